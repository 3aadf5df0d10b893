"""DataLoaders whose batch order depends only on (seed, epoch), so that a resumed run sees exactly the batches
(and dropout masks) an uninterrupted one would.

- `EpochShuffleSampler`: a permutation of the dataset that depends only on `seed + epoch`.
- `build_train_dataloader(...)` / `build_eval_dataloader(...)`: loaders that never draw from the global RNG.
- `epoch_dataloader(accelerator, dataloader, epoch, skip_batches)`: the loader for one epoch (set_epoch on
  everything that shuffles or masks per epoch; the first batches skipped when resuming mid-epoch).
- `pad_to_multiple_of(accelerator)`: what every collator rounds a padded length up to.
"""

import torch
from torch.utils.data import DataLoader, Sampler


class EpochShuffleSampler(Sampler):
    """Random permutation of `range(num_samples)` that depends only on `seed + epoch`.

    Unlike `RandomSampler` with a stateful generator, the order of epoch `e` can be recomputed after a
    restart, which is what makes `--resume_from_checkpoint` exact. Accelerate shards its batches across
    processes as usual; call `set_epoch` (or `epoch_dataloader`) before each epoch.
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True):
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.num_samples))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def build_train_dataloader(dataset, batch_size: int, collate_fn=None, seed: int = 42, shuffle: bool = True,
                           num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """A training DataLoader whose batches depend only on (seed, epoch): see `EpochShuffleSampler`.

    The loader gets its own `torch.Generator`, so creating an iterator never draws from the global RNG
    (that stream drives dropout, and a resumed run must see the same one). An `IterableDataset`
    (streaming) is passed through unshuffled here: shuffle it with `dataset.shuffle(seed, buffer_size)`,
    whose order follows `set_epoch`.
    """
    generator = torch.Generator().manual_seed(seed)
    if isinstance(dataset, torch.utils.data.IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, collate_fn=collate_fn, num_workers=num_workers,
                          drop_last=drop_last, generator=generator)
    sampler = EpochShuffleSampler(len(dataset), seed=seed, shuffle=shuffle)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, drop_last=drop_last, generator=generator)


def build_eval_dataloader(dataset, batch_size: int, collate_fn=None, num_workers: int = 0) -> DataLoader:
    """An unshuffled evaluation DataLoader with its own generator: evaluating mid-run never changes the
    global RNG stream, so runs with and without an interruption stay identical."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(0))


def _epoch_aware_parts(dataloader):
    """Every sampler / dataset / collator reachable from a (possibly accelerate-wrapped) DataLoader."""
    seen, stack, found = set(), [dataloader], []
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        found.append(obj)
        for name in ("base_dataloader", "batch_sampler", "sampler", "dataset", "collate_fn"):
            child = getattr(obj, name, None)
            if child is not None and not isinstance(child, (int, str, bool)):
                stack.append(child)
    return found[1:]


def epoch_dataloader(accelerator, dataloader, epoch: int, skip_batches: int = 0):
    """Set `epoch` on the loader and on everything in it that shuffles or masks per epoch (samplers,
    streaming datasets, collators with `set_epoch`), then return the iterable for this epoch, without its
    first `skip_batches` batches (resuming mid-epoch; uses `accelerator.skip_first_batches`)."""
    if hasattr(dataloader, "set_epoch"):
        dataloader.set_epoch(epoch)
    for part in _epoch_aware_parts(dataloader):
        set_epoch = getattr(part, "set_epoch", None)
        if callable(set_epoch) and not isinstance(part, DataLoader):
            set_epoch(epoch)
    if skip_batches > 0:
        return accelerator.skip_first_batches(dataloader, skip_batches)
    return dataloader


def pad_to_multiple_of(accelerator) -> int | None:
    """8 under mixed precision (fp16, bf16, fp8: tensor-core / AMX tiles want lengths divisible by 8), else None
    (pad to the longest example only)."""
    return 8 if accelerator.mixed_precision != "no" else None


__all__ = ["EpochShuffleSampler", "build_eval_dataloader", "build_train_dataloader", "epoch_dataloader",
           "pad_to_multiple_of"]
