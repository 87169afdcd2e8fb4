"""The DeepLab backbones by name, as feature extractors at output stride 8, 16 or 32.

For a Keras Applications backbone (`BACKBONES`), `build_backbone` cuts the stock model after
its last feature layer, loads ImageNet weights by layer name from a local published file
(`imagenet_weights.load_weights_by_name`) or keeps random init, and re-purposes it to the
requested output stride with atrous convolution (`output_stride.dilate_to_output_stride`),
keeping its weights. "vgg16" is DeepLab v1 / v2's VGG-16, whose max poolings pool 3x3 windows
(`vgg16.deeplab_pooling`); ResNets take DeepLabv3's multi-grid. Backbones that Keras
Applications lacks have their own builder (`CUSTOM_BACKBONES`): "xception65", DeepLabv3+'s
Xception-65. Every backbone maps normalised images to keras-hub's feature contract
`{"P2": ..., "P5": ...}`, where `Pn` has stride `min(2**n, output_stride)`.
"""

import dataclasses
import os
from typing import Callable

import keras

from deeplab_tf.backbones import xception65
from deeplab_tf.backbones.imagenet_weights import load_weights_by_name
from deeplab_tf.backbones.normalization import NORMALIZERS
from deeplab_tf.backbones.output_stride import check_output_stride
from deeplab_tf.backbones.output_stride import dilate_to_output_stride
from deeplab_tf.backbones.vgg16 import deeplab_pooling

LEVELS = ("P2", "P3", "P4", "P5")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one Keras Applications backbone and what it outputs.

    Args:
        application: callable. The `keras.applications` constructor.
        feature_layers: dict. Level ("P2".."P5") -> name of the layer whose output it is.
        channels: dict. Level -> number of feature channels at width multiplier 1.
        normalization: str. Key of `NORMALIZERS` matching the ImageNet weights.
        weights_file: str. Name of the published no-top ImageNet weight file; `{alpha}` is
            replaced by the width multiplier.
        has_width_multiplier: bool. Whether the application takes `alpha`. Defaults to False.
        adapt: callable or `None`. Maps the cut stock model to the model to dilate, keeping
            its weights. Defaults to `None` (no change).
        multi_grid_layers: tuple. Names of the convolutions of the units of the last block,
            which `multi_grid` scales; empty if the backbone has no multi-grid.
            Defaults to `()`.
    """

    application: Callable[..., keras.Model]
    feature_layers: dict
    channels: dict
    normalization: str
    weights_file: str
    has_width_multiplier: bool = False
    adapt: Callable[[keras.Model], keras.Model] | None = None
    multi_grid_layers: tuple = ()


def _resnet(application, conv4_blocks, weights_file):
    layers = ("conv2_block3_out", "conv3_block4_out", f"conv4_block{conv4_blocks}_out",
              "conv5_block3_out")
    return BackboneSpec(
        application=application,
        feature_layers=dict(zip(LEVELS, layers)),
        channels=dict(zip(LEVELS, (256, 512, 1024, 2048))),
        normalization="caffe",
        weights_file=weights_file,
        multi_grid_layers=tuple(f"conv5_block{unit}_2_conv" for unit in (1, 2, 3)),
    )


BACKBONES = {
    "resnet50": _resnet(keras.applications.ResNet50, 6,
                        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet101": _resnet(keras.applications.ResNet101, 23,
                         "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v2": BackboneSpec(
        application=keras.applications.MobileNetV2,
        feature_layers=dict(zip(LEVELS, ("block_2_add", "block_5_add", "block_12_add",
                                         "block_16_project_BN"))),
        channels=dict(zip(LEVELS, (24, 32, 96, 320))),
        normalization="tf",
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5",
        has_width_multiplier=True,
    ),
    "vgg16": BackboneSpec(
        application=keras.applications.VGG16,
        feature_layers=dict(zip(LEVELS, ("block2_pool", "block3_pool", "block4_pool",
                                         "block5_pool"))),
        channels=dict(zip(LEVELS, (128, 256, 512, 512))),
        normalization="caffe",
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        adapt=deeplab_pooling,
    ),
}


@dataclasses.dataclass(frozen=True)
class CustomBackbone:
    """A backbone that Keras Applications lacks, built by its own function.

    Args:
        build: callable. `build(output_stride, atrous_implementation, weights, multi_grid)`
            returns the feature extractor, as `build_backbone` describes.
        channels: dict. Level ("P2".."P5") -> number of feature channels.
        normalization: str. Key of `NORMALIZERS` matching the backbone's weights.
    """

    build: Callable[..., keras.Model]
    channels: dict
    normalization: str


CUSTOM_BACKBONES = {
    "xception65": CustomBackbone(build=xception65.build_xception65,
                                 channels=xception65.FEATURE_CHANNELS,
                                 normalization=xception65.NORMALIZATION),
}
BACKBONE_NAMES = tuple(sorted({**BACKBONES, **CUSTOM_BACKBONES}))


def get_backbone_spec(name):
    """Returns the `BackboneSpec` or `CustomBackbone` registered as `name`.

    Raises ValueError listing the valid names if there is none.
    """
    if name in CUSTOM_BACKBONES:
        return CUSTOM_BACKBONES[name]
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone {name!r}. Valid names: {list(BACKBONE_NAMES)}.")
    return BACKBONES[name]


def _has_width_multiplier(spec):
    """Returns whether `spec` is a Keras Applications backbone that takes `alpha`."""
    return isinstance(spec, BackboneSpec) and spec.has_width_multiplier


def _check_alpha(name, spec, alpha):
    """Raises ValueError if `alpha` is not 1.0 for a backbone without width multiplier."""
    if not _has_width_multiplier(spec) and alpha != 1.0:
        raise ValueError(
            f"Backbone {name!r} has no width multiplier; `alpha` must be 1.0. "
            f"Received: alpha={alpha!r}"
        )


def _round_channels(channels):
    """Rounds like Keras MobileNetV2's `_make_divisible(channels, 8)`; returns an int."""
    rounded = max(8, (channels + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * channels else rounded


def feature_channels(name, alpha=1.0):
    """Returns the channel count of each level of backbone `name`.

    Args:
        name: str. One of `BACKBONE_NAMES`.
        alpha: float. Width multiplier, only for backbones that have one. Defaults to 1.0.

    Returns:
        Dict level ("P2".."P5") -> int number of channels of that feature map.
    """
    spec = get_backbone_spec(name)
    _check_alpha(name, spec, alpha)
    if not _has_width_multiplier(spec):
        return dict(spec.channels)
    return {level: _round_channels(int(c * alpha)) for level, c in spec.channels.items()}


def get_normalizer(name):
    """Returns the function mapping RGB pixels in [0, 255] to inputs of backbone `name`.

    The function takes a float tensor `[..., 3]` and returns a float32 tensor of that shape.
    """
    return NORMALIZERS[get_backbone_spec(name).normalization]


def normalize(images, name):
    """Returns float32 `images` (RGB, [0, 255], shape `[..., 3]`) normalised for `name`."""
    return get_normalizer(name)(images)


def _check_weights(name, spec, weights, alpha):
    """Returns `weights` as a local path or None; raises for downloads and missing files."""
    if weights is None:
        return None
    expected = spec.weights_file.format(alpha=float(alpha))
    if weights == "imagenet":
        raise ValueError(
            "weights='imagenet' would download, which is not possible here. Pass the local "
            f"path of the Keras Applications file for {name!r}, e.g. .../{expected}."
        )
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file for backbone {name!r} not found: {path!r}.")
    return path


def _rate_multipliers(name, spec, multi_grid):
    """Returns multi-grid as `dilation_plan` rate multipliers; raises ValueError if invalid."""
    if multi_grid is None:
        return None
    if not spec.multi_grid_layers:
        supported = sorted([*(n for n, s in BACKBONES.items() if s.multi_grid_layers),
                            *CUSTOM_BACKBONES])
        raise ValueError(f"Backbone {name!r} has no multi-grid; `multi_grid` is supported for "
                         f"{supported}. Received: multi_grid={multi_grid!r}")
    units = len(spec.multi_grid_layers)
    if (not isinstance(multi_grid, (tuple, list)) or len(multi_grid) != units
            or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0
                       for m in multi_grid)):
        raise ValueError(f"`multi_grid` must be {units} positive ints, one per unit of the last "
                         f"block of {name!r}. Received: multi_grid={multi_grid!r}")
    return dict(zip(spec.multi_grid_layers, multi_grid))


def build_backbone(name, output_stride=16, weights=None, atrous_implementation="auto",
                   alpha=1.0, multi_grid=None):
    """Builds a backbone as a DeepLab feature extractor.

    Args:
        name: str. One of `BACKBONE_NAMES`: "resnet50", "resnet101", "mobilenet_v2", "vgg16"
            (DeepLab v1 / v2's VGG-16: 3x3 max poolings, see `vgg16.py`) from Keras
            Applications, or "xception65" (DeepLabv3+'s Xception-65, see `xception65.py`).
        output_stride: int. 8, 16 or 32: the stride of "P5". Defaults to 16.
        weights: `None` (random init) or a local path. For Keras Applications backbones, a
            published no-top ImageNet weight file (`.h5`, e.g.
            resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), loaded by layer name
            (`imagenet_weights.load_weights_by_name`); for "xception65", a `.weights.h5` file
            saved from a model built by `build_xception65`. Defaults to `None`.
        atrous_implementation: str. A value of
            `deeplab_tf.layers.ATROUS_IMPLEMENTATIONS` for the dilated convolutions.
            Defaults to "auto".
        alpha: float. Width multiplier of "mobilenet_v2"; must be 1.0 otherwise.
            Defaults to 1.0.
        multi_grid: tuple of 3 ints or `None`. DeepLabv3's multi-grid (arXiv:1706.05587,
            Sec. 3.2), ResNets and "xception65" only: the 3x3 convs of the three units of the
            last block (Xception-65: the three separable convs of its last block) get
            dilation `rate * multi_grid[i]`, where `rate` is the block's atrous rate (1, 2, 4
            at output stride 32, 16, 8). Defaults to `None` (all units at `rate`).

    Returns:
        `keras.Model` taking float32 images `[batch, height, width, 3]` (any size, normalised
        with `get_normalizer(name)`) and returning a dict of float32 tensors
        `{"Pn": [batch, height / s, width / s, feature_channels(name, alpha)["Pn"]]}` with
        `s = min(2**n, output_stride)`, for height and width multiples of `output_stride`;
        other sizes round as the stock model does (ResNet, VGG-16 and Xception-65 up;
        MobileNetV2 up in its first conv, then down, as its stride-2 blocks pad
        `((0, 1), (0, 1))`). Call it with
        `training=False` to use the BatchNorm moving statistics.

    Example:
    ```python
    backbone = build_backbone("mobilenet_v2", output_stride=8, alpha=0.35)
    features = backbone(normalize(images, "mobilenet_v2"), training=False)
    features["P5"].shape  # (batch, 28, 28, 112) for 224x224 images
    ```
    """
    spec = get_backbone_spec(name)
    check_output_stride(output_stride)
    _check_alpha(name, spec, alpha)
    if isinstance(spec, CustomBackbone):
        return spec.build(output_stride=output_stride,
                          atrous_implementation=atrous_implementation, weights=weights,
                          multi_grid=multi_grid)
    multipliers = _rate_multipliers(name, spec, multi_grid)
    path = _check_weights(name, spec, weights, alpha)
    width = {"alpha": alpha} if spec.has_width_multiplier else {}
    stock = spec.application(include_top=False, weights=None, input_shape=(None, None, 3),
                             **width)
    outputs = {level: stock.get_layer(layer).output for level, layer in spec.feature_layers.items()}
    features = keras.Model(stock.input, outputs, name=f"{name}_os{output_stride}")
    if path is not None:
        load_weights_by_name(features, path)
    if spec.adapt is not None:
        features = spec.adapt(features)
    return dilate_to_output_stride(features, output_stride, atrous_implementation, multipliers)
