"""Keras Applications backbones (ResNet-50 / 101, MobileNetV2, VGG-16) as DeepLab feature
extractors at output stride 8, 16 or 32.

`KerasApplication.build` cuts the stock model after its last feature layer, loads ImageNet
weights by layer name from a local published file (`imagenet_weights.load_weights_by_name`) or
keeps random init, and re-purposes it to the requested output stride with atrous convolution
(`output_stride.dilate_to_output_stride`), keeping its weights. "vgg16" is DeepLab v1 / v2's
VGG-16, whose max poolings pool 3x3 windows (`vgg16.deeplab_pooling`); ResNets take DeepLabv3's
multi-grid. `registry.BACKBONES` names these specs.

Two options reproduce TF1 slim's MobileNetV2 (the official DeepLab backbone) exactly:
`channel_divisor` rounds every width as slim does for a depth multiplier (DeepLab passes
divisor 1 below depth 1.0: widths exactly `base * alpha`, e.g. 12 where Keras rounds to 16), and
`padding="tf_same"` pads strided convolutions as TF's "SAME" at run time
(`tf_padding.tf_same_padding`).
"""

import dataclasses
from typing import Callable

import keras

from deeplab_tf.backbones.checks import check_multi_grid
from deeplab_tf.backbones.checks import check_weights_file
from deeplab_tf.backbones.imagenet_weights import load_weights_by_name
from deeplab_tf.backbones.output_stride import dilate_to_output_stride
from deeplab_tf.backbones.tf_padding import tf_same_padding
from deeplab_tf.backbones.vgg16 import deeplab_pooling

LEVELS = ("P2", "P3", "P4", "P5")
KERAS_CHANNEL_DIVISOR = 8
"""The divisor Keras Applications' MobileNetV2 rounds its widths to (`_make_divisible`)."""


@dataclasses.dataclass(frozen=True)
class KerasApplication:
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
        widths: callable or `None`. `widths(alpha, divisor)` returns {layer name: filters} of
            the width multiplier rounded to multiples of `divisor`; `None` if the application's
            own rounding is the only one. Defaults to `None`.
    """

    application: Callable[..., keras.Model]
    feature_layers: dict
    channels: dict
    normalization: str
    weights_file: str
    has_width_multiplier: bool = False
    adapt: Callable[[keras.Model], keras.Model] | None = None
    multi_grid_layers: tuple = ()
    widths: Callable[[float, int], dict] | None = None

    @property
    def multi_grid_units(self) -> int:
        """Returns how many ints `multi_grid` holds, 0 if the backbone has no multi-grid."""
        return len(self.multi_grid_layers)

    def build(self, name, output_stride, weights, alpha, multi_grid,
              channel_divisor=KERAS_CHANNEL_DIVISOR, padding="keras"):
        """Returns the feature extractor `registry.build_backbone` describes.

        `name` is the registry name (for messages and the model name); the other arguments
        are `build_backbone`'s, `output_stride`, `alpha`, `channel_divisor` and `padding`
        already checked.
        """
        multipliers = None if multi_grid is None else dict(zip(
            self.multi_grid_layers,
            check_multi_grid(multi_grid, self.multi_grid_units,
                             f"unit of the last block of {name!r}")))
        expected = self.weights_file.format(alpha=float(alpha))
        path = check_weights_file(
            name, weights, "weights='imagenet' would download, which is not possible here. "
            f"Pass the local path of the Keras Applications file for {name!r}, e.g. "
            f".../{expected}.")
        width = {"alpha": alpha} if self.has_width_multiplier else {}
        stock = self.application(include_top=False, weights=None, input_shape=(None, None, 3),
                                 **width)
        outputs = {level: stock.get_layer(layer).output
                   for level, layer in self.feature_layers.items()}
        features = keras.Model(stock.input, outputs, name=f"{name}_os{output_stride}")
        if channel_divisor != KERAS_CHANNEL_DIVISOR:
            features = with_filters(features, self.widths(alpha, channel_divisor))
        if path is not None:
            load_weights_by_name(features, path)
        if self.adapt is not None:
            features = self.adapt(features)
        if padding == "tf_same":
            features = tf_same_padding(features)
        return dilate_to_output_stride(features, output_stride, multipliers)


def round_channels(channels, divisor=KERAS_CHANNEL_DIVISOR):
    """Returns the int `channels` rounds to as Keras MobileNetV2's and slim's `_make_divisible`:
    the nearest multiple of `divisor` (at least `divisor`), one `divisor` more if that loses
    over 10%."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


MOBILENET_V2_BASE_WIDTHS = (32,) + (16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320)
"""MobileNetV2 at depth 1.0: `Conv1`, then the project width of `expanded_conv` and blocks 1..16."""


def mobilenet_v2_widths(alpha, divisor):
    """Returns {Keras layer name: filters} of MobileNetV2 (Keras Applications names) at width
    multiplier `alpha`, each width `round_channels(base * alpha, divisor)` and each expansion
    `round_channels(6 * input width, divisor)`, as slim's `mobilenet_v2` with `divisible_by`."""
    names = ["Conv1", "expanded_conv_project"] + [f"block_{block}_project" for block in range(1, 17)]
    filters, previous = {}, None
    for layer_name, base in zip(names, MOBILENET_V2_BASE_WIDTHS):
        if layer_name.startswith("block_"):
            filters[layer_name.replace("_project", "_expand")] = round_channels(6 * previous, divisor)
        previous = filters[layer_name] = round_channels(base * alpha, divisor)
    return filters


def with_filters(model, filters):
    """Returns a clone of the functional `model` (same layer names) whose layers named in
    `filters` ({name: int}) have that many output filters; the layers after them take the new
    channel counts. Every weight is freshly initialised."""
    def clone(layer):
        config = layer.get_config()
        if layer.name in filters:
            config["filters"] = filters[layer.name]
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def _resnet(application, conv4_blocks, weights_file):
    layers = ("conv2_block3_out", "conv3_block4_out", f"conv4_block{conv4_blocks}_out",
              "conv5_block3_out")
    return KerasApplication(
        application=application,
        feature_layers=dict(zip(LEVELS, layers)),
        channels=dict(zip(LEVELS, (256, 512, 1024, 2048))),
        normalization="caffe",
        weights_file=weights_file,
        multi_grid_layers=tuple(f"conv5_block{unit}_2_conv" for unit in (1, 2, 3)),
    )


RESNET50 = _resnet(keras.applications.ResNet50, 6,
                   "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
RESNET101 = _resnet(keras.applications.ResNet101, 23,
                    "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5")
MOBILENET_V2 = KerasApplication(
    application=keras.applications.MobileNetV2,
    feature_layers=dict(zip(LEVELS, ("block_2_add", "block_5_add", "block_12_add",
                                     "block_16_project_BN"))),
    channels=dict(zip(LEVELS, (24, 32, 96, 320))),
    normalization="tf",
    weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_224_no_top.h5",
    has_width_multiplier=True,
    widths=mobilenet_v2_widths,
)
VGG16 = KerasApplication(
    application=keras.applications.VGG16,
    feature_layers=dict(zip(LEVELS, ("block2_pool", "block3_pool", "block4_pool",
                                     "block5_pool"))),
    channels=dict(zip(LEVELS, (128, 256, 512, 512))),
    normalization="caffe",
    weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    adapt=deeplab_pooling,
)
