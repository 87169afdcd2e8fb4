"""Resuming training: the newest readable checkpoint, and checkpoint writing under tf.distribute.

A checkpoint becomes the latest only once it is complete: TensorFlow writes the data files, then
the `.index`, and `tf.train.CheckpointManager` rewrites the `checkpoint` state file atomically
last. A job killed while saving therefore leaves the previous checkpoint as the latest. A listed
checkpoint whose files were damaged later (truncated, overwritten) fails TensorFlow's per-tensor
checksums on restore; it is then skipped, saying so, for the one before it.

Preemption: schedulers (Kubernetes, Slurm, Borg, spot/preemptible VMs) stop a job with SIGTERM and
kill it with SIGKILL a grace period later. While training, `TerminationSignal` turns SIGTERM into a
request: the trainer finishes the step in progress, writes a checkpoint and raises `Preempted`,
which `python -m deeplab_tf.cli.train` turns into exit status 143 (128 + SIGTERM, what a shell reports
for a job ended by SIGTERM, so schedulers treat it as terminated, not as a failed run). Rerunning
the same command resumes from that step.
"""

import shutil
import signal
import threading

import tensorflow as tf

from deeplab_tf.training import distribute


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str, log=print) -> str | None:
    """Restores into `checkpoint` the newest readable checkpoint listed in `directory`.

    Returns its prefix, or None when `directory` lists none. A checkpoint that cannot be read is
    reported through `log` and the previous one is tried. Raises ValueError when every listed
    checkpoint is unreadable, and AssertionError when one is readable but holds other objects
    (another model or optimizer).
    """
    state = tf.train.get_checkpoint_state(directory)
    if state is None:
        return None
    errors = []
    for prefix in reversed(state.all_model_checkpoint_paths):
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
            return prefix
        except (tf.errors.OpError, IndexError) as error:  # IndexError: a truncated data file
            reason = str(getattr(error, "message", error)).split("\n")[0]
            errors.append(f"{prefix}: {reason}")
            log(f"warning: checkpoint {prefix} is unreadable ({reason}); trying the one before it")
    raise ValueError(f"No checkpoint in {directory} is readable: " + "; ".join(errors))


class CheckpointWriter:
    """Saves `checkpoint` every time `save(step)` is called, on every worker of `strategy`.

    The chief writes to `directory` (keeping `max_to_keep`); other workers must take part in the
    save too (multi-worker variables), so they write to their own temporary folder under
    `model_dir`, deleted after each save, as TensorFlow's multi-worker guide prescribes.
    """

    def __init__(self, checkpoint, directory: str, model_dir: str, strategy, max_to_keep: int = 3):
        self.chief = distribute.is_chief(strategy)
        self.directory = directory if self.chief else distribute.temporary_dir(model_dir, strategy)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=max_to_keep)
        self.latest = self.manager.latest_checkpoint if self.chief else None

    def save(self, step: int) -> None:
        path = self.manager.save(checkpoint_number=step)
        if self.chief:
            self.latest = path
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


class Preempted(Exception):
    """Raised by the trainer after a termination signal: the step in progress was finished and
    checkpointed. `exit_code` is the status the command line exits with."""

    exit_code = 128 + signal.SIGTERM

    def __init__(self, message: str, step: int, checkpoint: str | None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


class TerminationSignal:
    """Context manager: while active, SIGTERM (and the `signals` given) only records its number in
    `received` instead of ending the process; the previous handlers come back on exit. Python
    installs signal handlers only in the main thread: elsewhere it does nothing (`received` stays
    None and SIGTERM keeps its usual effect)."""

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = tuple(signals)
        self.received = None
        self._previous = {}

    def __enter__(self) -> "TerminationSignal":
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._record) for number in self.signals}
        return self

    def _record(self, number, frame) -> None:
        self.received = number

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
