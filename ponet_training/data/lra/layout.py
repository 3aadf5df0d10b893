"""Where a task's split files are: in the folder given, or in the subfolder the LRA release keeps them in, so
that a user can point at either (e.g. `lra_release/` or `lra_release/listops-1000/`)."""

import os
from pathlib import Path


def split_files(data_dir: str | os.PathLike, names: dict[str, str], release_folder: str) -> dict[str, Path] | None:
    """{split: path} when every file of `names` is in `data_dir` or in `data_dir/release_folder`, else None."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / release_folder):
        files = {split: folder / name for split, name in names.items()}
        if all(path.is_file() for path in files.values()):
            return files
    return None
