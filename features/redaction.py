"""Credentials out of anything we write or print: reports, MLflow params, error messages.

A data source can be a database URL with a password in it
(``postgresql://crm:s3cret@db/shop``). Wherever the source is written down, it
goes through :func:`redact_credentials` first, which keeps the user, host and
database (useful to know which data a model saw) and replaces secrets by ``***``.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@host  ->  scheme://user:***@host ; scheme://token@host -> scheme://***@host
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^\s/@:?#]*)(?::(?P<password>[^\s/]*))?@"
)
# password=..., ?token=..., "secret": "..." (query strings, libpq key=value strings, JSON)
_SECRET_KEYS = (
    r"password|passwd|pwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key"
    r"|sslpassword|auth|authorization|credentials?"
)
_KEY_VALUE = re.compile(
    rf"(?P<key>\b(?:{_SECRET_KEYS})\b[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s&;,\"'}}]+)",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match) -> str:
    if match.group("password") is None:
        user = match.group("user")
        # a lone user name is no secret, a lone token (e.g. https://<token>@host) is
        looks_secret = len(user) >= 20 and not user.isalpha()
        return f"{match.group('scheme')}{MASK if looks_secret else user}@"
    return f"{match.group('scheme')}{match.group('user')}:{MASK}@"


def redact_credentials(text: object) -> str:
    """``text`` with passwords, tokens and keys in URLs and ``key=value`` pairs masked.

    >>> redact_credentials("postgresql://crm:s3cret@db.example.com:5432/shop?sslmode=require")
    'postgresql://crm:***@db.example.com:5432/shop?sslmode=require'
    >>> redact_credentials("mysql://db/shop?user=crm&password=s3cret")
    'mysql://db/shop?user=crm&password=***'
    """
    if text is None:
        return ""
    masked = _USERINFO.sub(_mask_userinfo, str(text))
    return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{MASK}", masked)


__all__ = ["MASK", "redact_credentials"]
