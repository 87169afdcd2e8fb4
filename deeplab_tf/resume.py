"""Resuming training: the newest readable checkpoint, and checkpoint writing under tf.distribute.

A checkpoint becomes the latest only once it is complete: TensorFlow writes the data files, then
the `.index`, and `tf.train.CheckpointManager` rewrites the `checkpoint` state file atomically
last. A job killed while saving therefore leaves the previous checkpoint as the latest. A listed
checkpoint whose files were damaged later (truncated, overwritten) fails TensorFlow's per-tensor
checksums on restore; it is then skipped, saying so, for the one before it.
"""

import shutil

import tensorflow as tf

from deeplab_tf import distribute


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
