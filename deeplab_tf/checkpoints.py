"""Finding and restoring training checkpoints."""

import os

import tensorflow as tf

CHECKPOINT_SUBDIR = "checkpoints"


def checkpoint_dir(model_dir: str) -> str:
    """Returns the folder inside `model_dir` where training writes its checkpoints."""
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def resolve_checkpoint(path: str) -> str:
    """Returns a checkpoint prefix for `path`, which may be a prefix, a model dir or a checkpoint dir.

    Raises FileNotFoundError naming `path` when it holds no checkpoint.
    """
    if tf.io.gfile.exists(path + ".index"):
        return path
    for folder in (checkpoint_dir(path), path):
        if tf.io.gfile.isdir(folder):
            latest = tf.train.latest_checkpoint(folder)
            if latest:
                return latest
    raise FileNotFoundError(
        f"No checkpoint at {path!r}: expected a checkpoint prefix (with a .index file) or a model "
        f"dir containing {CHECKPOINT_SUBDIR}/checkpoint (written by deeplab_tf.train)"
    )


def restore_model(model, path: str) -> str:
    """Restores the model weights (not the optimizer) from the checkpoint at `path`.

    Returns the checkpoint prefix used. Raises FileNotFoundError as `resolve_checkpoint`, and
    ValueError when the checkpoint does not hold every weight of `model` (another architecture).
    """
    prefix = resolve_checkpoint(path)
    status = tf.train.Checkpoint(model=model).read(prefix)
    try:
        status.assert_existing_objects_matched().expect_partial()  # the optimizer is not wanted
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {prefix!r} does not match the model {model.name!r} built from this experiment "
            f"(was it trained with another experiment or override?): {str(error)[:300]}"
        ) from None
    return prefix
