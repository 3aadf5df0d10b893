"""Hub uploads: the repository a run pushes to, created early, and the upload of its output folder.

- `hub_repo_id(output_dir, hub_model_id)`, `create_hub_repo(...)`, `push_to_hub(...)`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path


logger = logging.getLogger(__name__)

# Accelerate state folders and other training leftovers that do not belong in a model repository.
DEFAULT_IGNORE_PATTERNS = ("step_*", "step_*/**", "epoch_*", "epoch_*/**", "checkpoint*", "checkpoint*/**",
                           "best_checkpoint/**", "*.tmp", ".ponet_*")


def hub_repo_id(output_dir: str | os.PathLike, hub_model_id: str | None = None) -> str:
    """The repository to push to: `hub_model_id`, or the output folder's name (under the token's user)."""
    if hub_model_id:
        return hub_model_id
    name = Path(output_dir).resolve().name
    if not name:
        raise ValueError("Cannot derive a Hub repository name from the output folder; pass `--hub_model_id`")
    return name


def create_hub_repo(output_dir: str | os.PathLike, hub_model_id: str | None = None, hub_token: str | None = None,
                    private: bool | None = None) -> str:
    """Create the Hub model repository (if needed) and return its full id; call early to fail fast on bad tokens."""
    from huggingface_hub import create_repo

    repo_url = create_repo(hub_repo_id(output_dir, hub_model_id), token=hub_token, private=private, exist_ok=True,
                           repo_type="model")
    return repo_url.repo_id


def push_to_hub(
    output_dir: str | os.PathLike,
    hub_model_id: str | None = None,
    hub_token: str | None = None,
    commit_message: str = "End of training",
    private: bool | None = None,
    ignore_patterns: Iterable[str] = DEFAULT_IGNORE_PATTERNS,
) -> str:
    """Upload `output_dir` (model, tokenizer, README.md model card, results) to the Hub model repo.

    Creates the repository if needed; Accelerate state folders (`step_*`, `epoch_*`, `checkpoint*`) are left
    out. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise FileNotFoundError(f"Nothing to push: {output_dir} is not a folder")
    if not (output_dir / "README.md").is_file():
        logger.warning("%s has no README.md model card; call write_model_card before pushing", output_dir)
    repo_id = create_hub_repo(output_dir, hub_model_id, hub_token, private=private)
    commit = HfApi(token=hub_token).upload_folder(
        repo_id=repo_id,
        folder_path=output_dir,
        commit_message=commit_message,
        repo_type="model",
        ignore_patterns=list(ignore_patterns),
    )
    logger.info("Pushed %s to https://huggingface.co/%s", output_dir, repo_id)
    return str(getattr(commit, "commit_url", commit))
