"""A run stopped by SIGTERM or SIGINT (a scheduler's preemption, Ctrl-C) ends cleanly on every rank (the rules:
docs/output_folders.md, "Preemption").

- `watch()`: called by `loop.train` when the updates start: the first SIGTERM / SIGINT is recorded and logged, and
  the handlers the process had before are put back (a second signal acts at once, as usual).
- `stop_agreed(accelerator)`: called by `loop.train` at every step boundary, on every rank: the signal any rank
  received (one gather of one integer per update), or None. The loop then yields a `stop` update, which
  `best_model.BestModelTracker.after_update` saves as a checkpoint by the protocol of a scheduled one
  (`checkpoints.CheckpointWriter.save_now`) before calling `stop_run`.
- `stop_run(accelerator, signal_name, step, total, checkpoint)`: the one log line (where the checkpoint is, how to
  resume), then `Preempted`: a `SystemExit` with status `PREEMPTED_EXIT_STATUS` (75).
- `finish()`: called by `loop.train` after the last update: a signal that comes now lets the run finish its final
  evaluation and save (the quickest way to a complete result); `restore()`: called when the run folder is released,
  puts the process's own handlers back.

Exit status 75 is EX_TEMPFAIL of sysexits.h ("a temporary failure: run it again"): a job script or a pod failure
policy tells a stopped run (75) from a failed one (1) and a killed one (137, 143). Under `accelerate launch` the
launcher reports its own status (see docs/output_folders.md).
"""

from __future__ import annotations

import logging
import signal
import threading

import torch


logger = logging.getLogger(__name__)

PREEMPTED_EXIT_STATUS = 75  # EX_TEMPFAIL
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Signal handlers belong to the process, so their state does too: the handlers before `watch`, the signal received,
# and whether the run is still training ("stop") or finishing ("finish").
_original: dict | None = None
_received: str | None = None
_mode = "stop"


class Preempted(SystemExit):
    """A run stopped by a signal after saving where it stood; the process exits with `PREEMPTED_EXIT_STATUS`."""

    def __init__(self, message: str):
        super().__init__(PREEMPTED_EXIT_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


def received() -> str | None:
    """The name of the stop signal this process received (e.g. "SIGTERM"), or None."""
    return _received


def _handler(signum, frame) -> None:
    global _received
    first = _received is None
    if first:
        _received = signal.Signals(signum).name
    _put_back()  # a second signal acts as it would without us
    if _mode == "stop":
        logger.warning("%s received: the run stops at the next step boundary, after saving a checkpoint there "
                       "(send it again to stop at once)", signal.Signals(signum).name)
    else:
        logger.warning("%s received after the last update: the run finishes its final evaluation and save first "
                       "(send it again to stop at once)", signal.Signals(signum).name)


def _put_back() -> None:
    for sig, handler in (_original or {}).items():
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def watch() -> None:
    """Record the first SIGTERM / SIGINT from now on instead of dying (main thread only: Python runs signal handlers
    there); a signal the process ignores stays ignored. A signal already received (while a previous run of the
    process was finishing) is kept."""
    global _original, _mode
    _mode = "stop"
    if threading.current_thread() is not threading.main_thread():
        logger.warning("Training outside the main thread: SIGTERM / SIGINT stop the process at once, unsaved")
        return
    if _original is None:
        _original = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    if _received is None:
        for sig in STOP_SIGNALS:
            if _original[sig] is not signal.SIG_IGN:  # ignored stays ignored (a shell's background job: SIGINT)
                signal.signal(sig, _handler)


def stop_agreed(accelerator) -> str | None:
    """Whether to stop at this step boundary: the signal received by any process (every process must call this at
    the same boundaries), or None."""
    code = signal.Signals[_received].value if _received else 0
    if accelerator.num_processes > 1:
        codes = accelerator.gather(torch.tensor([code], device=accelerator.device)).tolist()
        code = next((c for c in codes if c), 0)
    return signal.Signals(code).name if code else None


def finish() -> None:
    """The updates are over: a signal from now on lets the run finish (see the module docstring)."""
    global _mode
    _mode = "finish"
    if _received is not None:
        logger.warning("%s came at the last step boundary: the run finishes its final evaluation and save", _received)


def restore() -> None:
    """Put the process's own SIGTERM / SIGINT handlers back and forget any signal received (the run is over)."""
    global _original, _received, _mode
    if _original is not None and threading.current_thread() is threading.main_thread():
        _put_back()
    _original, _received, _mode = None, None, "stop"


class stop_signals:
    """`watch()` ... `restore()` as a `with` block (for code that trains outside a run folder)."""

    def __enter__(self):
        watch()
        return self

    def __exit__(self, *exc) -> None:
        restore()


def stop_run(accelerator, signal_name: str, step: int, total: int, checkpoint=None, unsaved: str = "") -> None:
    """Log where the stopped run is saved and how to finish it (main process), end the trackers, raise `Preempted`.
    `checkpoint`: the folder saved for the stop (None: nothing was saved, for the reason `unsaved`)."""
    if checkpoint is not None:
        message = (f"Stopped by {signal_name} at step {step} of {total}: the run is saved in {checkpoint}; run the "
                   "same command with --resume_from_checkpoint latest to finish it "
                   f"(exit status {PREEMPTED_EXIT_STATUS})")
    else:
        message = (f"Stopped by {signal_name} at step {step} of {total}: nothing was saved ({unsaved}) "
                   f"(exit status {PREEMPTED_EXIT_STATUS})")
    if accelerator.is_main_process:
        logger.warning(message)
    accelerator.end_training()  # the trackers' last records; every process leaves the process group together
    raise Preempted(message)


__all__ = ["PREEMPTED_EXIT_STATUS", "Preempted", "finish", "received", "restore", "stop_agreed", "stop_run",
           "stop_signals", "watch"]
