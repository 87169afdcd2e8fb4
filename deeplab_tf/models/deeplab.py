"""DeepLabv3 and DeepLabv3+ as functional Keras models built from a `ModelConfig`.

backbone -> ASPP (v3) -> [decoder fusing stride-4 features (v3+)] -> 1x1 classifier -> bilinear
resize to the input resolution. Papers: DeepLabv3 (arXiv:1706.05587), DeepLabv3+ (arXiv:1802.02611).
"""

import keras

from deeplab_tf import backbones
from deeplab_tf.config import ModelConfig
from deeplab_tf.layers.aspp import ASPP
from deeplab_tf.layers.deeplab_v3_plus_decoder import DeepLabV3PlusDecoder
from deeplab_tf.layers.resize import ResizeToMatch

V3_ARCHITECTURES = ("deeplab_v3", "deeplab_v3_plus")
CLASSIFIER_LAYER = "logits"
"""Name of the final 1x1 classifier (what transfer to another number of classes replaces)."""


def build_deeplab(config: ModelConfig, num_classes: int) -> keras.Model:
    """Returns a Keras model mapping normalised float32 images [B, H, W, 3] (any H, W) to
    float32 logits [B, H, W, num_classes] at the input resolution.

    Layers: the backbone sub-model, `ASPP` ("aspp"), for v3+ `DeepLabV3PlusDecoder`
    ("decoder"), the 1x1 classifier "logits" and "upsample_logits" (TF1's align-corners
    sampling in every resize with `config.align_corners`). Raises ValueError naming an
    unknown architecture or an invalid output stride.
    """
    if config.arch not in V3_ARCHITECTURES:
        raise ValueError(f"model.arch={config.arch!r} is not one of {V3_ARCHITECTURES}")
    if config.output_stride not in (8, 16):
        raise ValueError(f"model.output_stride={config.output_stride} must be 8 or 16 for DeepLab")
    backbone = backbones.build_backbone(
        config.backbone,
        output_stride=config.output_stride,
        weights=config.backbone_weights or None,
        alpha=config.backbone_alpha,
        multi_grid=tuple(config.multi_grid) or None,
        channel_divisor=config.backbone_channel_divisor,
        padding=config.backbone_padding,
    )
    images = keras.Input(shape=(None, None, 3), name="images")
    features = backbone(images)
    # The rates are stated for output stride 16; at output stride 8 they double (DeepLabv3 Sec. 3.3).
    rate_scale = 16 // config.output_stride
    x = ASPP(
        input_channels=features["P5"].shape[-1],
        rates=tuple(r * rate_scale for r in config.atrous_rates),
        filters=config.aspp_filters,
        image_pooling=config.aspp_image_pooling,
        separable=config.separable,
        batch_norm_momentum=config.batch_norm_momentum,
        align_corners=config.align_corners,
    )(features["P5"])
    if config.arch == "deeplab_v3_plus":
        x = DeepLabV3PlusDecoder(
            encoder_channels=config.aspp_filters,
            low_level_channels=features["P2"].shape[-1],
            low_level_filters=config.low_level_filters,
            filters=config.decoder_filters,
            separable=config.separable,
            batch_norm_momentum=config.batch_norm_momentum,
            align_corners=config.align_corners,
        )([x, features["P2"]])
    logits = keras.layers.Conv2D(num_classes, 1, name=CLASSIFIER_LAYER)(x)
    logits = ResizeToMatch(align_corners=config.align_corners, name="upsample_logits")([logits, images])
    model = keras.Model(images, logits, name=f"{config.arch}_{config.backbone}")
    _set_batch_norm_momentum(model, config.batch_norm_momentum)
    return model


def _set_batch_norm_momentum(model: keras.Model, momentum: float) -> None:
    """Sets the moving-average momentum of every BatchNormalization layer, backbone included
    (Keras Applications use 0.99 or 0.999, too slow for short schedules)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
