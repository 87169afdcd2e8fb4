"""DeepLabv3 and DeepLabv3+ as functional Keras models built from a `ModelConfig`.

backbone -> ASPP (v3) -> [decoder fusing stride-4 features (v3+)] -> 1x1 classifier -> bilinear
resize to the input resolution. Papers: DeepLabv3 (arXiv:1706.05587), DeepLabv3+ (arXiv:1802.02611).
"""

import keras

from deeplab_tf import backbones
from deeplab_tf.config import ModelConfig
from deeplab_tf.layers.aspp import aspp
from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.resize import ResizeToMatch

V3_ARCHITECTURES = ("deeplab_v3", "deeplab_v3_plus")


def build_deeplab(config: ModelConfig, num_classes: int) -> keras.Model:
    """Returns a Keras model mapping normalised float32 images [B, H, W, 3] (any H, W) to
    float32 logits [B, H, W, num_classes] at the input resolution.

    Raises ValueError naming an unknown architecture or an invalid output stride.
    """
    if config.arch not in V3_ARCHITECTURES:
        raise ValueError(f"model.arch={config.arch!r} is not one of {V3_ARCHITECTURES}")
    if config.output_stride not in (8, 16):
        raise ValueError(f"model.output_stride={config.output_stride} must be 8 or 16 for DeepLab")
    backbone = backbones.build_backbone(
        config.backbone,
        output_stride=config.output_stride,
        weights=config.backbone_weights or None,
        atrous_implementation=config.atrous_implementation,
        alpha=config.backbone_alpha,
        multi_grid=tuple(config.multi_grid) or None,
    )
    images = keras.Input(shape=(None, None, 3), name="images")
    features = backbone(images)
    # The rates are stated for output stride 16; at output stride 8 they double (DeepLabv3 Sec. 3.3).
    rate_scale = 16 // config.output_stride
    x = aspp(
        features["P5"],
        rates=tuple(r * rate_scale for r in config.atrous_rates),
        filters=config.aspp_filters,
        implementation=config.atrous_implementation,
        batch_norm_momentum=config.batch_norm_momentum,
        separable=config.separable,
    )
    if config.arch == "deeplab_v3_plus":
        x = _decoder(x, features["P2"], config)
    logits = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    logits = ResizeToMatch(name="upsample_logits")([logits, images])
    model = keras.Model(images, logits, name=f"{config.arch}_{config.backbone}")
    _set_batch_norm_momentum(model, config.batch_norm_momentum)
    return model


def _decoder(encoder_output, low_level, config: ModelConfig):
    """DeepLabv3+ decoder: upsample the encoder output to stride 4, concatenate a 1x1 projection
    of the stride-4 backbone features, refine with two 3x3 convolutions (atrous separable ones
    with `config.separable`).

    Returns a float32 Keras tensor [B, H/4, W/4, decoder_filters].
    """
    momentum = config.batch_norm_momentum
    low_level = conv_bn_relu(low_level, config.low_level_filters, 1, "decoder_low_level", batch_norm_momentum=momentum)
    x = ResizeToMatch(name="decoder_upsample")([encoder_output, low_level])
    x = keras.layers.Concatenate(name="decoder_concat")([x, low_level])
    for index in (1, 2):
        x = conv_bn_relu(
            x,
            config.decoder_filters,
            3,
            f"decoder_conv{index}",
            implementation=config.atrous_implementation,
            batch_norm_momentum=momentum,
            separable=config.separable,
        )
    return x


def _set_batch_norm_momentum(model: keras.Model, momentum: float) -> None:
    """Sets the moving-average momentum of every BatchNormalization layer, backbone included
    (Keras Applications use 0.99 or 0.999, too slow for short schedules)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
