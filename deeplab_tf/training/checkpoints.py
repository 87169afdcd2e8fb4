"""Training checkpoints whose model weights are keyed by name, and restoring them.

The model's weights are saved under their Keras paths (`layer_name/weight_name`), not by the
position of the layer in the model, so one checkpoint restores into the same architecture built
at another output stride (DeepLabv3 trained at 16, evaluated at 8), with another atrous
implementation, or wrapped for multi-scale inputs.
"""

import os

import tensorflow as tf

from deeplab_tf.models import weights_file
from deeplab_tf.pretrained import published, zoo

CHECKPOINT_SUBDIR = "checkpoints"


def checkpoint_dir(model_dir: str) -> str:
    """Returns the folder inside `model_dir` where training writes its checkpoints."""
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def model_weights(model) -> tf.train.Checkpoint:
    """Returns a trackable holding every weight of `model` (trainable or not) under its Keras path.

    Raises ValueError if two weights share a path.
    """
    named = {}
    for weight in model.weights:
        key = weight.path.replace("/", ".")
        if key in named and named[key] is not weight:
            raise ValueError(f"Model {model.name!r} has two weights named {weight.path!r}")
        named[key] = weight
    return tf.train.Checkpoint(**named)


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
        f"dir containing {CHECKPOINT_SUBDIR}/checkpoint (written by deeplab_tf.cli.train)"
    )


def restore_model(model, path: str, log=None) -> str:
    """Restores every weight of `model` (not the optimizer) from `path`, which is one of:
    - a training checkpoint (prefix, checkpoint dir or model dir);
    - a weights file (`*.npz`, `deeplab_tf.models.weights_file`), or the name of a model the
      zoo ships as one (e.g. "camvid_mnv2_voc_transfer", when no file or folder has that name);
    - a published model (`deeplab_tf.pretrained.published`, e.g. the official TF.js DeepLabv3
      MobileNetV2 folder; a classifier of another number of classes is then left at its
      initialisation, logged with `log`).

    Returns the checkpoint prefix or file used (or what was imported). Raises FileNotFoundError as
    `resolve_checkpoint`, and ValueError naming the first missing weights when the checkpoint
    does not hold every weight of `model` (another architecture or number of classes).
    """
    if not os.path.exists(path) and zoo.is_shipped(path):
        path = zoo.shipped_file(path)
    if weights_file.is_weights_file(path):
        weights_file.load_weights_file(model, path)
        return path
    if published.is_published_model(path):
        return published.load_published_model(model, path, log=log)
    prefix = resolve_checkpoint(path)
    status = tf.train.Checkpoint(model_weights=model_weights(model)).read(prefix).expect_partial()
    try:
        status.assert_existing_objects_matched()  # the optimizer is not wanted: partial is expected
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {prefix!r} does not hold the weights of the model {model.name!r} built from "
            f"this experiment (trained with another experiment or override?): {str(error)[:400]}"
        ) from None
    return prefix
