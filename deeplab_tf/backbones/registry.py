"""The DeepLab backbones by name (`BACKBONES`), and `build_backbone`, which builds any of them.

Keras Applications backbones are `keras_applications.KerasApplication` specs; backbones that
Keras Applications lacks are `CustomBackbone`s with their own builder ("xception65", DeepLabv3+'s
Xception-65). Every backbone maps normalised images to keras-hub's feature contract
`{"P2": ..., "P5": ...}`, where `Pn` has stride `min(2**n, output_stride)`.
"""

import dataclasses
import difflib
from typing import Callable

import keras

from deeplab_tf.backbones import keras_applications
from deeplab_tf.backbones import xception65
from deeplab_tf.backbones.keras_applications import KERAS_CHANNEL_DIVISOR
from deeplab_tf.backbones.normalization import NORMALIZERS
from deeplab_tf.backbones.output_stride import check_output_stride
from deeplab_tf.backbones.tf_padding import PADDINGS


@dataclasses.dataclass(frozen=True)
class CustomBackbone:
    """A backbone that Keras Applications lacks, built by its own function.

    Args:
        builder: callable. `builder(output_stride=..., weights=..., multi_grid=...)` returns
            the feature extractor, as `build_backbone` describes; it checks `weights` and
            `multi_grid` itself.
        channels: dict. Level ("P2".."P5") -> number of feature channels.
        normalization: str. Key of `NORMALIZERS` matching the backbone's weights.
        multi_grid_units: int. How many ints `multi_grid` holds, 0 for none. Defaults to 0.
    """

    builder: Callable[..., keras.Model]
    channels: dict
    normalization: str
    multi_grid_units: int = 0
    has_width_multiplier = False  # not a field: no custom backbone takes `alpha`

    def build(self, name, output_stride, weights, alpha, multi_grid, channel_divisor=None, padding=None):
        """Returns `builder`'s model; `name`, `alpha`, `channel_divisor` and `padding` (their
        defaults, checked) are not used."""
        return self.builder(output_stride=output_stride, weights=weights,
                            multi_grid=multi_grid)


BACKBONES = {
    "resnet50": keras_applications.RESNET50,
    "resnet101": keras_applications.RESNET101,
    "mobilenet_v2": keras_applications.MOBILENET_V2,
    "vgg16": keras_applications.VGG16,
    "xception65": CustomBackbone(builder=xception65.build_xception65,
                                 channels=xception65.FEATURE_CHANNELS,
                                 normalization=xception65.NORMALIZATION,
                                 multi_grid_units=xception65.MULTI_GRID_UNITS),
}
"""Backbone name -> `KerasApplication` or `CustomBackbone`."""

BACKBONE_NAMES = tuple(sorted(BACKBONES))


def get_backbone_spec(name):
    """Returns the `KerasApplication` or `CustomBackbone` registered as `name`.

    Raises ValueError naming the closest registered name, if any, and all of them.
    """
    if name not in BACKBONES:
        close = difflib.get_close_matches(str(name), BACKBONE_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown backbone {name!r}.{hint} Valid names: {list(BACKBONE_NAMES)}.")
    return BACKBONES[name]


def _check_alpha(name, spec, alpha):
    """Raises ValueError if `alpha` is not 1.0 for a backbone without width multiplier."""
    if not spec.has_width_multiplier and alpha != 1.0:
        raise ValueError(
            f"Backbone {name!r} has no width multiplier; `alpha` must be 1.0. "
            f"Received: alpha={alpha!r}"
        )


def _check_widths(name, spec, channel_divisor, padding):
    """Raises ValueError for a `channel_divisor` or `padding` that backbone `name` cannot build."""
    if channel_divisor != KERAS_CHANNEL_DIVISOR and getattr(spec, "widths", None) is None:
        raise ValueError(f"Backbone {name!r} rounds no widths; `channel_divisor` must be "
                         f"{KERAS_CHANNEL_DIVISOR}. Received: channel_divisor={channel_divisor!r}")
    if not (isinstance(channel_divisor, int) and channel_divisor >= 1):
        raise ValueError(f"`channel_divisor` must be an int >= 1. Received: channel_divisor={channel_divisor!r}")
    if padding not in PADDINGS or (padding != "keras" and isinstance(spec, CustomBackbone)):
        raise ValueError(f"`padding` must be one of {PADDINGS} (\"tf_same\" for Keras Applications "
                         f"backbones only). Received: padding={padding!r} for {name!r}")


def feature_channels(name, alpha=1.0, channel_divisor=KERAS_CHANNEL_DIVISOR):
    """Returns the channel count of each level of backbone `name`.

    Args:
        name: str. One of `BACKBONE_NAMES`.
        alpha: float. Width multiplier, only for backbones that have one. Defaults to 1.0.
        channel_divisor: int. What the widths are rounded to multiples of, as for
            `build_backbone`. Defaults to 8.

    Returns:
        Dict level ("P2".."P5") -> int number of channels of that feature map.
    """
    spec = get_backbone_spec(name)
    _check_alpha(name, spec, alpha)
    _check_widths(name, spec, channel_divisor, "keras")
    if not spec.has_width_multiplier:
        return dict(spec.channels)
    # Keras truncates `c * alpha` before rounding, slim does not (equal at Keras' alphas).
    return {level: keras_applications.round_channels(
                int(c * alpha) if channel_divisor == KERAS_CHANNEL_DIVISOR else c * alpha, channel_divisor)
            for level, c in spec.channels.items()}


def get_normalizer(name):
    """Returns the function mapping RGB pixels in [0, 255] to inputs of backbone `name`.

    The function takes a float tensor `[..., 3]` and returns a float32 tensor of that shape.
    """
    return NORMALIZERS[get_backbone_spec(name).normalization]


def normalize(images, name):
    """Returns float32 `images` (RGB, [0, 255], shape `[..., 3]`) normalised for `name`."""
    return get_normalizer(name)(images)


def build_backbone(name, output_stride=16, weights=None, alpha=1.0, multi_grid=None,
                   channel_divisor=KERAS_CHANNEL_DIVISOR, padding="keras"):
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
        alpha: float. Width multiplier of "mobilenet_v2"; must be 1.0 otherwise.
            Defaults to 1.0.
        multi_grid: tuple of 3 ints or `None`. DeepLabv3's multi-grid (arXiv:1706.05587,
            Sec. 3.2), ResNets and "xception65" only: the 3x3 convs of the three units of the
            last block (Xception-65: the three separable convs of its last block) get
            dilation `rate * multi_grid[i]`, where `rate` is the block's atrous rate (1, 2, 4
            at output stride 32, 16, 8). Defaults to `None` (all units at `rate`).
        channel_divisor: int. "mobilenet_v2" only: its widths `base * alpha` are rounded to
            multiples of this, as slim's `divisible_by` (the official DeepLab MobileNetV2 at
            depth 0.5 uses 1: 12 channels where Keras has 16). The weights are then random
            (no ImageNet file has those widths). Defaults to 8 (Keras Applications' model).
        padding: str. "keras" (the application's explicit `ZeroPadding2D` before strided
            convs) or "tf_same" (Keras Applications backbones: those convs pad as TF's "SAME"
            at run time, as TF1 slim; `tf_padding.tf_same_padding`). Defaults to "keras".

    Returns:
        `keras.Model` taking float32 images `[batch, height, width, 3]` (any size, normalised
        with `get_normalizer(name)`) and returning a dict of float32 tensors
        `{"Pn": [batch, height / s, width / s, feature_channels(name, alpha)["Pn"]]}` with
        `s = min(2**n, output_stride)`, for height and width multiples of `output_stride`;
        other sizes round as the stock model does (ResNet, VGG-16 and Xception-65 up;
        MobileNetV2 up in its first conv, then down, as its stride-2 blocks pad
        `((0, 1), (0, 1))`; up everywhere with `padding="tf_same"`). Call it with `training=False` to use the BatchNorm moving
        statistics. Its dilated convolutions are deeplab_tf atrous layers
        (`AtrousConv2D`, `AtrousDepthwiseConv2D`, `SeparableAtrousConv2D`) with their default
        implementation; `deeplab_tf.layers.speed_choices.apply_speed_choices` sets another.

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
    _check_widths(name, spec, channel_divisor, padding)
    if channel_divisor != KERAS_CHANNEL_DIVISOR and weights is not None:
        raise ValueError(f"ImageNet weights exist only for Keras' widths; `channel_divisor` "
                         f"{channel_divisor} needs weights=None. Received: weights={weights!r}")
    if multi_grid is not None and not spec.multi_grid_units:
        supported = [n for n in BACKBONE_NAMES if BACKBONES[n].multi_grid_units]
        raise ValueError(f"Backbone {name!r} has no multi-grid; `multi_grid` is supported for "
                         f"{supported}. Received: multi_grid={multi_grid!r}")
    return spec.build(name, output_stride=output_stride, weights=weights, alpha=alpha,
                      multi_grid=multi_grid, channel_divisor=channel_divisor, padding=padding)
