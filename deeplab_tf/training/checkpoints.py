"""Training checkpoints whose model weights are keyed by name, and restoring them.

The model's weights are saved under their Keras paths (`layer_name/weight_name`), not by the
position of the layer in the model, so one checkpoint restores into the same architecture built
at another output stride (DeepLabv3 trained at 16, evaluated at 8), with another atrous
implementation, or wrapped for multi-scale inputs.
"""

import os
import re

import tensorflow as tf

from deeplab_tf.models import weights_file
from deeplab_tf.pretrained import published, zoo

CHECKPOINT_SUBDIR = "checkpoints"
CHECKPOINT_INDEX = re.compile(r"ckpt-(\d+)\.index")  # what tf.train.CheckpointManager writes


def checkpoint_dir(model_dir: str) -> str:
    """Returns the folder inside `model_dir` where training writes its checkpoints."""
    return os.path.join(model_dir, CHECKPOINT_SUBDIR)


def model_weights(model) -> tf.train.Checkpoint:
    """Returns a trackable holding every weight of `model` (trainable or not) under its Keras path.

    Raises ValueError if two weights share a path.
    """
    named = {}
    for weight in model.weights:
        key = weight_key(weight)
        if key in named and named[key] is not weight:
            raise ValueError(f"Model {model.name!r} has two weights named {weight.path!r}")
        named[key] = weight
    return tf.train.Checkpoint(**named)


def weight_key(weight) -> str:
    """Returns the name `model_weights` saves `weight` under: its Keras path with "/" as "."."""
    return weight.path.replace("/", ".")


def resolve_checkpoint(path: str, log=print) -> str:
    """Returns a checkpoint prefix for `path`, which may be a prefix, a model dir or a checkpoint dir.

    In a folder it is the newest checkpoint on disk whose every tensor reads back, found from the
    `ckpt-N.index` files, so a broken or missing `checkpoint` state file changes nothing; each
    newer one that cannot be read is reported through `log`. Raises FileNotFoundError naming
    `path` when it holds no checkpoint, and ValueError naming each when none can be read.
    """
    if tf.io.gfile.exists(path + ".index"):
        return path
    for folder in (checkpoint_dir(path), path):
        prefixes = checkpoints_on_disk(folder)
        if prefixes:
            return newest_readable(prefixes, read_every_tensor, folder, log)
    raise FileNotFoundError(
        f"No checkpoint at {path!r}: expected a checkpoint prefix (with a .index file) or a model "
        f"dir containing {CHECKPOINT_SUBDIR}/ckpt-N.index (written by deeplab_tf.cli.train)"
    )


def checkpoints_on_disk(directory: str) -> list[str]:
    """Returns the prefixes of the checkpoints training wrote in `directory` (one per
    `ckpt-N.index` file), newest (largest N) first; [] when there is none or no such folder.
    The `checkpoint` state file is not read."""
    if not tf.io.gfile.isdir(directory):
        return []
    matches = [CHECKPOINT_INDEX.fullmatch(name) for name in tf.io.gfile.listdir(directory)]
    numbers = [int(match[1]) for match in matches if match]
    return [os.path.join(directory, f"ckpt-{number}") for number in sorted(numbers, reverse=True)]


def read_every_tensor(prefix: str) -> None:
    """Reads every tensor of checkpoint `prefix` (verifying its checksums); raises
    tf.errors.OpError (or IndexError, for some truncated data files) when one cannot be read."""
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)


UNREADABLE = (tf.errors.OpError, IndexError)
"""What reading a damaged checkpoint raises (IndexError: some truncated data files)."""


def newest_readable(prefixes: list[str], read, directory: str, log=print, hint: str = "") -> str:
    """Returns the first of `prefixes` (newest first) that `read(prefix)` reads without a read
    error; each one before it is reported through `log`. Raises ValueError naming `directory`,
    each checkpoint's error and then `hint` when none can be read (other errors of `read`
    propagate)."""
    errors = []
    for prefix in prefixes:
        try:
            read(prefix)
            return prefix
        except UNREADABLE as error:
            reason = published.read_error(error)
            errors.append(f"{prefix}: {reason}")
            log(f"warning: checkpoint {prefix} is unreadable ({reason}); trying the one before it")
    problems = "; ".join(errors) or "it holds no ckpt-N.index file"
    raise ValueError(f"No checkpoint in {directory} is readable: {problems}" + (f"; {hint}" if hint else ""))


def first_dtype_mismatch(model, prefix: str) -> str:
    """Returns "weight W is <dtype> in the checkpoint, <dtype> in the model" for the first weight
    of `model` that checkpoint `prefix` (written through `model_weights`) holds in another dtype
    (e.g. float32 weights into a `train.mixed_precision=float64` model), or "" when none is.
    Reads the checkpoint's index only; weights it lacks are left to the restore's own checks."""
    stored = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
    for weight in model.weights:
        # The object path TensorFlow writes for the `model_weights` key: its "." doubled.
        key = weight_key(weight).replace(".", "..")
        dtype = stored.get(f"model_weights/{key}/.ATTRIBUTES/VARIABLE_VALUE")
        if dtype is not None and dtype != weight.dtype:
            return f"weight {weight.path!r} is {dtype.name} in the checkpoint, {tf.as_dtype(weight.dtype).name} in the model"
    return ""


def restore_model(model, path: str, log=None, partial: bool = False) -> str:
    """Restores every weight of `model` (not the optimizer) from `path`, which is one of:
    - a training checkpoint (prefix, checkpoint dir or model dir);
    - a weights file (`*.npz`, `deeplab_tf.models.weights_file`), or the name of a model the
      zoo ships as one (e.g. "camvid_mnv2_voc_transfer", when no file or folder has that name);
    - a published model (`deeplab_tf.pretrained.published`, e.g. the official TF.js DeepLabv3
      MobileNetV2 folder). Only with `partial` (fine-tuning from it: `train.init_checkpoint`) may
      it leave layers at their initialisation (a classifier of another number of classes, logged
      with `log`; a decoder it lacks); otherwise that is a ValueError naming them.

    Returns the checkpoint prefix or file used (or what was imported). Raises FileNotFoundError as
    `resolve_checkpoint`, and ValueError naming the checkpoint when it cannot be read (a missing
    or truncated file), or, with the first weight that is missing or of another shape or
    dtype, when it does not fit `model` (another architecture, width, number of classes or
    weight type).
    """
    if not os.path.exists(path) and zoo.is_shipped(path):
        path = zoo.shipped_file(path)
    if weights_file.is_weights_file(path):
        weights_file.load_weights_file(model, path)
        return path
    if published.is_published_model(path):
        return published.load_published_model(model, path, log=log, partial=partial)
    prefix = resolve_checkpoint(path)
    another = "(trained with another experiment or override?)"
    try:
        mismatch = first_dtype_mismatch(model, prefix)  # before reading: TF reports it as a read error
        status = None if mismatch else tf.train.Checkpoint(model_weights=model_weights(model)).read(prefix).expect_partial()
    except ValueError as error:  # a weight of another shape, e.g. "Received incompatible tensor with shape ..."
        raise ValueError(f"Checkpoint {prefix!r} does not fit the model {model.name!r} built from this experiment "
                         f"{another}: {error}") from None
    except UNREADABLE as error:
        raise published.unreadable_checkpoint(prefix, error) from None
    if mismatch:
        raise ValueError(f"Checkpoint {prefix!r} does not fit the model {model.name!r} built from this experiment: "
                         f"its weights are of another type ({mismatch})")
    try:
        status.assert_existing_objects_matched()  # the optimizer is not wanted: partial is expected
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {prefix!r} does not hold the weights of the model {model.name!r} built from "
            f"this experiment {another}: {str(error)[:400]}"
        ) from None
    return prefix
