"""A Python file imported as a module, for what lives in a file rather than a package: the scripts of `pretrain/`
and `finetune/` run in-process (the GLUE sweep's `--in_process`, the tests) and VADER's analyzer read from its sdist.

- `load_script(path, name=None)`: the module of `path` (executed once per call, registered under no package).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def load_script(path: str | os.PathLike, name: str | None = None):
    """Import the file `path` as a fresh module named `name` (default: the file's stem) and return it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No Python file at {path}")
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


__all__ = ["load_script"]
