"""Models are unpickled only when they are byte for byte what was registered.

Unpickling runs code, so a model file swapped in the artifact store after
registration could run anything in the service. At registration the SHA-256 of
the model's pickle files is recorded as the version tag ``model_sha256``; a
registry URI (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``) is loaded from
a local copy whose digest is checked first, and refused when it differs or the
version has no digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Version tag holding the SHA-256 of the model's pickle files.
DIGEST_TAG = "model_sha256"
PICKLE_SUFFIXES = (".pkl", ".pickle")
_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/]+))/?$")


class ModelIntegrityError(RuntimeError):
    """A registered model's files are not the ones recorded at registration."""


def model_digest(location: str | Path) -> str:
    """SHA-256 over the pickle files of a model folder (or one pickle file), in path order.

    Each file contributes its relative path and its bytes, so renaming or
    swapping files changes the digest as much as editing one.
    """
    location = Path(location)
    if location.is_file():
        files, root = [location], location.parent
    else:
        files = sorted(p for p in location.rglob("*") if p.suffix in PICKLE_SUFFIXES)
        root = location
    if not files:
        raise ModelIntegrityError(f"no pickle file in {location}: not a winback model folder")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _quiet_download() -> Iterator[None]:
    """No MLflow progress bar while we copy a model to check it (commands print their own)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _download(uri: str, dst_path: str | Path) -> Path:
    import mlflow

    with _quiet_download():
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst_path)))


def digest_of_uri(model_uri: str) -> str:
    """The digest of a logged model (downloaded to a temporary folder to hash it)."""
    with tempfile.TemporaryDirectory() as folder:
        return model_digest(_download(model_uri, folder))


def _registered_version(client: Any, uri: str) -> Any | None:
    match = _REGISTRY_URI.match(uri)
    if match is None:
        return None
    if match.group("version"):
        return client.get_model_version(match.group("name"), match.group("version"))
    return client.get_model_version_by_alias(match.group("name"), match.group("alias"))


def verified_download(uri: str, dst_path: str | Path) -> Path:
    """Download a model to ``dst_path``; for a registry URI, check its digest first.

    Returns the local folder (or file). Raises :class:`ModelIntegrityError`
    naming the version when the digest is missing or differs. Other URIs
    (``runs:/``, ``models:/m-...``, local paths) are not registered versions and
    are downloaded unchecked.
    """
    from mlflow import MlflowClient

    version = _registered_version(MlflowClient(), uri)
    if version is None:
        return _download(uri, dst_path)
    label = f"{version.name} version {version.version}"
    expected = (version.tags or {}).get(DIGEST_TAG)
    if not expected:
        raise ModelIntegrityError(
            f"{label} has no {DIGEST_TAG} tag: it was registered without a checksum, so "
            f"winback will not unpickle it. Retrain (`winback train`) to register a checked version"
        )
    source = f"models:/{version.name}/{version.version}"
    local = _download(source, dst_path)
    actual = model_digest(local)
    if actual != expected:
        raise ModelIntegrityError(
            f"{label} was changed after registration: its pickle has sha256 {actual[:12]}..., "
            f"registered {expected[:12]}... Not loading it; restore the artifact or retrain"
        )
    return local


__all__ = [
    "DIGEST_TAG",
    "ModelIntegrityError",
    "digest_of_uri",
    "model_digest",
    "verified_download",
]
