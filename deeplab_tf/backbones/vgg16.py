"""VGG-16 with DeepLab's pooling (DeepLab v1 / v2, arXiv:1412.7062 Sec. 3.1, arXiv:1606.00915),
and its ImageNet fully connected layers as DeepLab's fc6 / fc7 convolutions.

DeepLab's released VGG-16 (the DeepLab-LargeFOV prototxt) makes every max pooling a 3x3 window
with padding 1: pool1-3 keep stride 2 and pool4-5 get stride 1. `deeplab_pooling` applies the
3x3 windows ("same" padding, stride 2) to Keras' `VGG16`, whose pools are 2x2 "valid";
`output_stride.dilate_to_output_stride` then removes the strides of pool4 / pool5 and dilates
conv5 by 2, as for any backbone. Pooling has no weights, so the ImageNet weights are unchanged.

Why 3x3 windows also for pool1-3: a symmetric window keeps every feature centred on an input
pixel (position i of a stride-8 map on input pixel 8i, for sizes 8k + 1 such as DeepLab's 321
and 513, where "same" pads one zero on each side like Caffe's `pad: 1`), and a stride-8 map has
ceil(size / 8) positions (41 for 321, as in the papers). Keras' 2x2 windows would shift each
level by half a pixel and floor the sizes instead.

`fully_connected_as_convolutions` turns fc1 / fc2 of Keras Applications' VGG-16 file with the
top (`vgg16_weights_tf_dim_ordering_tf_kernels.h5`) into fc6 / fc7 kernels of any of the
papers' sizes (7x7 / 4x4 / 3x3, 4096 or 1024 filters); `models.deeplab_v2` applies it when the
backbone weights file holds them.
"""

import os

import keras
import numpy as np

from deeplab_tf.backbones.imagenet_weights import read_layer_weights
from deeplab_tf.backbones.imagenet_weights import stored_layer_names
from deeplab_tf.backbones.output_stride import copy_weights_by_name

TOP_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
FC_LAYERS = ("fc1", "fc2")
FC1_KERNEL_SIZE = 7  # fc1 sees block5_pool's 7x7x512 map of a 224x224 image
FC1_INPUT_CHANNELS = 512
FC_UNITS = 4096


def _deeplab_pool(layer):
    """Returns a fresh copy of `layer`; a max pooling becomes 3x3, "same", same stride."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.MaxPooling2D):
        config.update(pool_size=(3, 3), padding="same")
    return layer.__class__.from_config(config)


def deeplab_pooling(model):
    """Returns a copy of the VGG `model` whose max poolings are 3x3 windows with "same" padding.

    Args:
        model: functional `keras.Model` made of Keras `VGG16` layers (possibly cut at several
            feature layers).

    Returns:
        New `keras.Model` with the inputs, outputs, layer names and weights of `model`; each
        `MaxPooling2D` keeps its stride but pools a 3x3 window with "same" padding.
    """
    clone = keras.models.clone_model(model, clone_function=_deeplab_pool)
    copy_weights_by_name(model, clone)
    return clone


def has_fully_connected_weights(path) -> bool:
    """Returns whether the Keras HDF5 weight file `path` holds VGG-16's fc1 and fc2, i.e. is the
    Keras Applications file with the top (`TOP_WEIGHTS_FILE`) rather than the no-top one."""
    return set(FC_LAYERS) <= set(stored_layer_names(path))


def decimation_indices(size: int, target: int) -> np.ndarray:
    """Returns `target` evenly spaced indices into `range(size)`, first and last included:
    7 -> 3 gives (0, 3, 6), 7 -> 4 gives (0, 2, 4, 6), 7 -> 7 all of them."""
    return np.round(np.linspace(0, size - 1, target)).astype(int)


def fully_connected_as_convolutions(path, kernel_size: int, channels: int) -> dict:
    """Converts VGG-16's ImageNet fc1 / fc2 into DeepLab v1 / v2's fc6 / fc7 convolutions.

    fc1's kernel [25088, 4096] is the flattened 7x7x512 block5_pool map (Keras' row-major
    `Flatten` order), so it reshapes to a 7x7 convolution kernel [7, 7, 512, 4096]; fc2's
    [4096, 4096] is a 1x1 convolution. DeepLab made fc6 smaller by "spatially subsampling (by
    simple decimation) the first FC layer to 4x4 (or 3x3) spatial size" (v1, arXiv:1412.7062
    Sec. 3.1) and LargeFOV thinner by "retaining a random subset of 1,024 out of the 4,096
    filters in layers fc6 and fc7" (v2, arXiv:1606.00915 Sec. 4.1.1). Here the kernel rows and
    columns kept are `decimation_indices(7, kernel_size)` and the filters kept are every
    (4096 / channels)-th one (0, 4, 8, ... for 1024): a fixed subset, so the conversion is
    reproducible. fc7 keeps the same filters as fc6 on its input side and the same subset of
    its own filters, so fc6 -> fc7 stays a sub-network of fc1 -> fc2.

    Args:
        path: str or path-like. The Keras Applications VGG-16 file with the top
            (`vgg16_weights_tf_dim_ordering_tf_kernels.h5`), or any Keras HDF5 weight file
            holding layers "fc1" and "fc2" of that shape.
        kernel_size: int. Side of fc6's kernel, 1 to 7.
        channels: int. Filters of fc6 and fc7; must divide 4096.

    Returns:
        Dict with "fc6": [kernel [k, k, 512, channels], bias [channels]] and
        "fc7": [kernel [1, 1, channels, channels], bias [channels]], float32.

    Raises:
        ValueError: naming `path` and the layer ("fc1" or "fc2") when the file lacks it, holds
            it in another shape, or it cannot be decimated to `kernel_size` / `channels`.
    """
    path = os.fspath(path)
    if not 1 <= kernel_size <= FC1_KERNEL_SIZE:
        raise ValueError(f"{path}: layer 'fc1' has a {FC1_KERNEL_SIZE}x{FC1_KERNEL_SIZE} kernel, which "
                         f"cannot be decimated to {kernel_size}x{kernel_size} for fc6.")
    if channels < 1 or FC_UNITS % channels:
        raise ValueError(f"{path}: layer 'fc1' has {FC_UNITS} filters; fc6 / fc7 keep every "
                         f"(4096 / channels)-th one, so channels must divide {FC_UNITS}. "
                         f"Received: channels={channels}")
    fc1_kernel, fc1_bias = _dense_weights(path, "fc1", FC1_KERNEL_SIZE ** 2 * FC1_INPUT_CHANNELS)
    fc2_kernel, fc2_bias = _dense_weights(path, "fc2", FC_UNITS)
    step = FC_UNITS // channels
    spatial = decimation_indices(FC1_KERNEL_SIZE, kernel_size)
    fc6 = fc1_kernel.reshape(FC1_KERNEL_SIZE, FC1_KERNEL_SIZE, FC1_INPUT_CHANNELS, FC_UNITS)
    fc6 = fc6[spatial][:, spatial][..., ::step]
    fc7 = fc2_kernel[::step, ::step].reshape(1, 1, channels, channels)
    return {
        "fc6": [np.ascontiguousarray(fc6, "float32"), fc1_bias[::step].astype("float32")],
        "fc7": [np.ascontiguousarray(fc7, "float32"), fc2_bias[::step].astype("float32")],
    }


def _dense_weights(path, name, inputs):
    """Returns (kernel [inputs, 4096], bias [4096]) of Dense layer `name` stored in `path`;
    raises ValueError naming `path` and `name` if the file holds something else."""
    weights = read_layer_weights(path, name)
    shapes = [tuple(w.shape) for w in weights]
    if shapes != [(inputs, FC_UNITS), (FC_UNITS,)]:
        raise ValueError(f"{path}: layer {name!r} holds weights of shapes {shapes}; VGG-16's "
                         f"{name} has a kernel {(inputs, FC_UNITS)} and a bias {(FC_UNITS,)}.")
    return weights
