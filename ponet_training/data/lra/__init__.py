"""Long Range Arena data: ListOps and Pathfinder generated here, the other tasks read from the Hub or the LRA
release's files, all as `datasets.DatasetDict`s of id sequences (`tasks.load_lra_dataset`, `tasks.TASKS`).

The two names are loaded on first use, so that `python -m ponet_training.data.lra.listops` (or `.pathfinder`)
runs its module once, as the command."""

__all__ = ["TASKS", "LraTask", "load_lra_dataset"]


def __getattr__(name):
    if name in __all__:
        from ponet_training.data.lra import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
