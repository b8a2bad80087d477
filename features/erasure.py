"""The erasure registry: customers who asked to be forgotten, known only by a salted hash.

``winback forget`` removes a customer from everything winback wrote and records
them here; from then on every loader treats their input rows as erased: the
rows are counted under the quarantine reason ``erased`` and kept nowhere (not
in the tables, not in the quarantine files). The registry never holds an id:

* ``salt`` — 32 random bytes (hex) made on the first erasure, private to this
  installation; ids are recognised by HMAC-SHA256 with it;
* ``erasure_log.jsonl`` — one line per erased customer: ``id_hash``,
  ``erased_at``, the stores rewritten and the rows removed from each;
* ``written_files.json`` — files written with ``--out`` that hold customer rows
  (validated tables, quarantine files, feature tables, exported lists), so
  ``winback forget`` rewrites them wherever they are.

The folder is ``winback_output/erasure`` of the working directory, or
``$WINBACK_ERASURE_DIR``. Keep it with the outputs (and back it up with them):
without it a restored backup or a re-read source would bring the customers back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.inputs.schema import ShopTables
from features.publish import publish_text

ENV_ERASURE_DIR = "WINBACK_ERASURE_DIR"
DEFAULT_ERASURE_DIR = Path("winback_output") / "erasure"
SALT_NAME = "salt"
LOG_NAME = "erasure_log.jsonl"
LOCK_NAME = ".erasure.lock"
WRITTEN_NAME = "written_files.json"
#: Columns holding another customer's id, blanked (not dropped) when that customer is erased.
REFERENCE_COLUMNS = {"referrals": ("referred_customer_id",)}


@dataclass(frozen=True)
class ErasureRegistry:
    """The erased customers of one installation (see the module docstring)."""

    folder: Path

    @classmethod
    def default(cls, environ: Mapping[str, str] | None = None) -> ErasureRegistry:
        """``$WINBACK_ERASURE_DIR``, else ``winback_output/erasure`` of the working directory."""
        env = os.environ if environ is None else environ
        return cls(Path(env.get(ENV_ERASURE_DIR) or DEFAULT_ERASURE_DIR))

    @property
    def log_path(self) -> Path:
        return Path(self.folder) / LOG_NAME

    def _salt(self, *, create: bool = False) -> bytes | None:
        path = Path(self.folder) / SALT_NAME
        if path.is_file():
            return bytes.fromhex(path.read_text(encoding="ascii").strip())
        if not create:
            return None
        salt = secrets.token_bytes(32)
        publish_text(path, salt.hex() + "\n")
        return salt

    @staticmethod
    def _digest(salt: bytes, customer_id: str) -> str:
        return hmac.new(salt, str(customer_id).encode("utf-8"), hashlib.sha256).hexdigest()

    def entries(self) -> list[dict]:
        """The log lines, oldest first (empty without erasures)."""
        if not self.log_path.is_file():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def hashes(self) -> frozenset[str]:
        """The salted hashes of every erased customer."""
        return frozenset(entry["id_hash"] for entry in self.entries())

    def has_erasures(self) -> bool:
        """Whether any customer was erased (loaders skip the check otherwise)."""
        return self.log_path.is_file() and bool(self.hashes())

    def mask(self, customer_ids: pd.Series | Sequence[str]) -> np.ndarray:
        """True where the id belongs to an erased customer (missing ids are never erased)."""
        ids = pd.Series(customer_ids, dtype="string")
        hashes = self.hashes()
        salt = self._salt()
        if not hashes or salt is None or ids.empty:
            return np.zeros(len(ids), dtype=bool)
        codes, uniques = pd.factorize(ids)
        erased = np.fromiter(
            (self._digest(salt, u) in hashes for u in uniques), dtype=bool, count=len(uniques)
        )
        return np.where(codes >= 0, erased[np.maximum(codes, 0)], False)

    def erased_among(self, customer_ids: Iterable[str]) -> list[str]:
        """Those of ``customer_ids`` already erased."""
        ids = list(customer_ids)
        return [i for i, gone in zip(ids, self.mask(ids), strict=True) if gone]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's write lock (one ``winback forget`` at a time), waiting for it."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        fd = os.open(Path(self.folder) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def written_files(self) -> list[Path]:
        """The files :meth:`record_written` noted, oldest first."""
        path = Path(self.folder) / WRITTEN_NAME
        if not path.is_file():
            return []
        return [Path(p) for p in json.loads(path.read_text(encoding="utf-8"))]

    def record_written(self, files: Iterable[Path]) -> None:
        """Note files winback wrote customer rows to, for ``winback forget`` to rewrite.

        Only the files themselves: the folder they sit in may hold the shop's own
        sources, which winback leaves alone. Holds :meth:`locked` itself; absolute
        paths, each once.
        """
        with self.locked():
            known = self.written_files()
            new = [p for p in dict.fromkeys(Path(f).resolve() for f in files) if p not in known]
            if new:
                paths = [str(p) for p in (*known, *new)]
                publish_text(Path(self.folder) / WRITTEN_NAME, json.dumps(paths, indent=1) + "\n")

    def record(
        self,
        customer_ids: Iterable[str],
        *,
        rewritten: Sequence[str] = (),
        removed_rows: Mapping[str, int] | None = None,
        erased_at: dt.datetime | None = None,
    ) -> list[str]:
        """Add customers to the registry (call it holding :meth:`locked`); return their hashes.

        The log line per customer holds the salted hash, the time, the stores
        rewritten and the rows removed from each: never the id. Recording an
        already erased customer again adds a line (a second request is logged too).
        """
        salt = self._salt(create=True)
        when = (erased_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).isoformat()
        hashes = [self._digest(salt, str(i)) for i in dict.fromkeys(map(str, customer_ids))]
        lines = [
            json.dumps(
                {
                    "id_hash": h,
                    "erased_at": when,
                    "rewritten": list(rewritten),
                    "removed_rows": dict(removed_rows or {}),
                },
                sort_keys=True,
            )
            for h in hashes
        ]
        old = self.log_path.read_text(encoding="utf-8") if self.log_path.is_file() else ""
        publish_text(self.log_path, old + "".join(line + "\n" for line in lines))
        return hashes


def drop_erased(
    tables: ShopTables, registry: ErasureRegistry | None
) -> tuple[ShopTables, dict[str, int]]:
    """The tables without rows of erased customers, and the rows removed per table.

    For tables that did not pass the loaders' validation (a simulated shop):
    the loaders quarantine such rows as ``erased`` themselves. References to an
    erased customer in another customer's row (a referral's
    ``referred_customer_id``) are blanked, not dropped.
    """
    if registry is None or not registry.has_erasures():
        return tables, {}
    changed: dict[str, pd.DataFrame] = {}
    removed: dict[str, int] = {}
    for name, frame in tables.present().items():
        gone = registry.mask(frame["customer_id"])
        out = frame.loc[~gone].reset_index(drop=True) if gone.any() else frame
        for column in REFERENCE_COLUMNS.get(name, ()):
            if column in out.columns:
                refs = registry.mask(out[column])
                if refs.any():
                    out = out.copy()
                    out.loc[refs, column] = pd.NA
        if out is not frame:
            changed[name] = out
            removed[name] = int(gone.sum())
    return (replace(tables, **changed) if changed else tables), removed


__all__ = [
    "DEFAULT_ERASURE_DIR",
    "ENV_ERASURE_DIR",
    "ErasureRegistry",
    "drop_erased",
]
