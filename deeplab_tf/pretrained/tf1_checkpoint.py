"""TF1 (name-based, `tf.compat.v1.train.Saver`) checkpoints, as in the official DeepLab tarballs.

The official `model.ckpt-N` holds the model variables under their scope names
(`MobilenetV2/Conv/weights`, `MobilenetV2/Conv/BatchNorm/moving_mean`, `aspp0/weights`,
`logits/semantic/biases`, ...), the optimizer's slot of each trainable variable
(`<variable>/Momentum`: DeepLab's train.py uses `tf.train.MomentumOptimizer`) and `global_step`.
DeepLab's train.py keeps no moving average of the weights, so the variables themselves are the
trained weights. ImageNet-pretrained slim checkpoints (DeepLab's initial checkpoints) were trained
with RMSProp and keep `<variable>/ExponentialMovingAverage` shadows; like DeepLab's own
initialisation from them (by variable name), the reader returns the plain variables and skips
the shadows and slots.
"""

import os

import tensorflow as tf

from deeplab_tf.pretrained.source_tensors import SourceFileError, SourceTensors

SKIPPED_SUFFIXES = ("/Momentum", "/ExponentialMovingAverage", "/RMSProp", "/RMSProp_1")
SKIPPED_NAMES = ("global_step",)


def read_tf1_checkpoint(path: str) -> SourceTensors:
    """Reads the model variables of a TF1 checkpoint given by its prefix (`.../model.ckpt-30000`)
    or by its directory (the checkpoint named in the directory's `checkpoint` file).

    Returns `SourceTensors` keyed by variable name (float32 arrays for DeepLab's variables),
    without `global_step` and the names ending in one of `SKIPPED_SUFFIXES` (optimizer slots and
    moving-average shadows). Raises `SourceFileError` if no checkpoint is found at `path`."""
    prefix = tf.train.latest_checkpoint(path) if os.path.isdir(path) else path
    if prefix is None:
        raise SourceFileError(f"no checkpoint in directory {path} (no 'checkpoint' file naming one)")
    if not os.path.isfile(prefix + ".index"):
        raise SourceFileError(f"no TF1 checkpoint at {prefix} (expected {prefix}.index and its data files)")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as error:
        raise SourceFileError(f"cannot read checkpoint {prefix}: {str(error).splitlines()[0]}") from None
    names = [
        name
        for name in reader.get_variable_to_shape_map()
        if name not in SKIPPED_NAMES and not name.endswith(SKIPPED_SUFFIXES)
    ]
    return SourceTensors({name: reader.get_tensor(name) for name in sorted(names)}, prefix)
