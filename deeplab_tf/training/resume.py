"""Resuming training: the newest readable checkpoint, and checkpoint writing under tf.distribute.

Training resumes from the newest checkpoint on disk, found from the `ckpt-N.index` files, not
from the `checkpoint` state file (which a crash, a copy or a user can leave broken or missing).
TensorFlow writes a checkpoint's data files first and its `.index` last, so a job killed while
saving leaves no index for that save and the previous checkpoint is the newest. A checkpoint whose
files were damaged later (truncated, overwritten) fails TensorFlow's per-tensor checksums on
restore; it is then skipped, saying so, for the one before it. When checkpoints are there but none
is readable, training refuses to start again at step 0 over them.

One training process per model dir: `model_dir_lock` holds an `fcntl.flock` lock on
MODEL_DIR/train.lock while training, and a second process is refused. The kernel drops the lock
when its process ends, however it ends (kill -9 included), so a crash never leaves it stale.

Preemption: schedulers (Kubernetes, Slurm, Borg, spot/preemptible VMs) stop a job with SIGTERM and
kill it with SIGKILL a grace period later. While training, `TerminationSignal` turns SIGTERM into a
request: the trainer finishes the step in progress, writes a checkpoint and raises `Preempted`,
which `python -m deeplab_tf.cli.train` turns into exit status 143 (128 + SIGTERM, what a shell reports
for a job ended by SIGTERM, so schedulers treat it as terminated, not as a failed run). Rerunning
the same command resumes from that step.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import threading
import time

import tensorflow as tf

from deeplab_tf.training import checkpoints, distribute

STATE_FILE = "checkpoint"  # tf.train.CheckpointManager's list of the checkpoints it keeps
LOCK_FILE = "train.lock"


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str, log=print) -> str | None:
    """Restores into `checkpoint` the newest readable checkpoint in `directory`.

    The checkpoints are found from their `ckpt-N.index` files (`checkpoints.checkpoints_on_disk`),
    not from the `checkpoint` state file, so a state file that is broken or missing changes
    nothing. A checkpoint that cannot be read is reported through `log` and the previous one is
    tried. Returns its prefix, or None when `directory` holds neither a checkpoint nor a state file
    (a new run). Raises ValueError when it holds some but none is readable, rather than train
    again from step 0 over them, and AssertionError when one is readable but holds other objects
    (another model or optimizer).
    """
    prefixes = checkpoints.checkpoints_on_disk(directory)
    if not prefixes and not tf.io.gfile.exists(os.path.join(directory, STATE_FILE)):
        return None
    return checkpoints.newest_readable(
        prefixes, lambda prefix: checkpoint.restore(prefix).assert_existing_objects_matched(), directory, log,
        hint=f"training does not start again at step 0 over them: to do so, move {directory} away",
    )


@contextlib.contextmanager
def model_dir_lock(model_dir: str):
    """Context manager: holds an exclusive `fcntl.flock` lock on MODEL_DIR/`LOCK_FILE` (which then
    holds this process's id) while active; the existing folder `model_dir` is not otherwise touched.

    Raises ValueError naming `model_dir` and the holder's process id when another process (or
    another `model_dir_lock` of this one) holds it. The lock goes with the file's closing, at the
    latest when the process ends, however it ends.
    """
    path = os.path.join(model_dir, LOCK_FILE)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise ValueError(
                f"{model_dir} is in use by another training process (process id {holder}, lock {path}); "
                f"wait for it to end, or train into another --model_dir"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


def set_aside_unreadable_state_file(directory: str, log=print) -> None:
    """Renames the `checkpoint` state file in `directory` to `checkpoint.unreadable-TIME` (saying
    so through `log`) when it exists but cannot be read: tf.train.CheckpointManager fails on some
    such files (binary, empty) and cannot replace a folder. Its next save writes a new one."""
    path = os.path.join(directory, STATE_FILE)
    if not tf.io.gfile.exists(path):
        return
    try:
        readable = tf.train.get_checkpoint_state(directory) is not None  # None: unparsable or unreadable
    except ValueError:  # empty (no latest checkpoint named), or not UTF-8
        readable = False
    if not readable:
        aside = f"{path}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(path, aside)
        log(f"warning: the checkpoint state file {path} is unreadable; moved to {aside}, a new one is written "
            f"at the next checkpoint")


class CheckpointWriter:
    """Saves `checkpoint` every time `save(step)` is called, on every worker of `strategy`.

    The chief writes to `directory` (keeping `max_to_keep`); other workers must take part in the
    save too (multi-worker variables), so they write to their own temporary folder under
    `model_dir`, deleted after each save, as TensorFlow's multi-worker guide prescribes. `latest`
    is the checkpoint the run resumed from (None for a new run) until the first save. An unreadable
    state file is first set aside (`set_aside_unreadable_state_file`, reported through `log`).
    """

    def __init__(self, checkpoint, directory: str, model_dir: str, strategy, latest: str | None = None,
                 log=print, max_to_keep: int = 3):
        self.chief = distribute.is_chief(strategy)
        if self.chief:
            set_aside_unreadable_state_file(directory, log)
        self.directory = directory if self.chief else distribute.temporary_dir(model_dir, strategy)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=max_to_keep)
        self.latest = latest if self.chief else None

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
