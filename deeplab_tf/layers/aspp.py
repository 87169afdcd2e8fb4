"""Atrous Spatial Pyramid Pooling: DeepLab v2's summed class-score branches and DeepLabv3's
concatenated feature branches with image pooling, as one serialisable Keras layer.

Papers: DeepLab v2 (arXiv:1606.00915, Sec. 3.2, Fig. 4), DeepLabv3 (arXiv:1706.05587, Sec. 3.3).
"""

import keras

from deeplab_tf.layers.atrous_conv import AtrousConv2D
from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.resize import ResizeToMatch
from deeplab_tf.layers.speed_choices import ConfiguredSubModel

MODES = ("concat", "sum")


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ASPP(ConfiguredSubModel):
    """Atrous Spatial Pyramid Pooling over backbone features.

    References:
    - [DeepLab v2](https://arxiv.org/abs/1606.00915): `mode="sum"`, one branch per rate, each
      scoring the classes, the scores summed (ASPP-S rates (2, 4, 8, 12), ASPP-L (6, 12, 18,
      24); one rate is LargeFOV).
    - [DeepLabv3](https://arxiv.org/abs/1706.05587): `mode="concat"`, a 1x1 branch, one 3x3
      atrous branch per rate and image pooling (global average -> 1x1 -> bilinear upsampling),
      each conv-BN-ReLU, concatenated and projected by a 1x1 conv-BN-ReLU.

    It is a functional sub-model (keras-hub's backbones are built the same way), so its inner
    convolutions and batch norms stay visible to `deeplab_tf.models.fold_batch_norm` and to the
    speed choices of `deeplab_tf.models.speed_choices`. Layer names do not depend on the rates'
    scaling with the output stride ("concat" names branches by position, `{name}_atrous{i}`), so
    weights restore across output strides.

    Args:
        input_channels: int. Channels of the features.
        rates: tuple of int. "concat": the atrous branches' rates (may be empty, as in the
            official MobileNetV2 DeepLabv3); "sum": one branch per distinct rate.
        filters: int. "concat": channels of every branch and of the output; "sum": the number
            of classes scored. Defaults to 256.
        mode: str. "concat" (v3) or "sum" (v2). Defaults to "concat".
        kernel_size: int. Side of each branch's atrous kernel ("sum"; "concat" uses 3, as
            published). Defaults to 3.
        image_pooling: bool. "concat": add the image-pooling branch. Defaults to True.
        separable: bool. "concat": the atrous branches are atrous separable convolutions
            (DeepLabv3+). Defaults to False.
        branch_channels: int. "sum": 0 makes each branch one atrous conv to the classes (the
            ResNet "classifier" head); C > 0 makes it fc6 (k x k atrous, C channels, ReLU,
            dropout) -> fc7 (1x1, C, ReLU, dropout) -> fc8 (1x1 to the classes), the VGG-16
            "fc" head. Defaults to 0.
        dropout_rate: float. "sum" with `branch_channels`: dropout after fc6 and fc7.
            Defaults to 0.5.
        batch_norm_momentum: float. "concat": momentum of the batch norms. Defaults to 0.99.
        align_corners: bool. "concat": the image-pooling branch is resized as TF1's
            `resize_bilinear(align_corners=True)` (`ResizeToMatch`); from the 1x1 pooled map
            both samplings broadcast, so the values are the same. Defaults to False.
        name: str. The sub-model's name and ("concat") its layers' prefix. Defaults to "aspp".

    Returns (when called): a float Keras tensor [B, H, W, filters] at the features' resolution.
    Class-score layers ("sum") start from N(0, 0.01) weights, as DeepLab's fc8, and are named
    `logits_rate{r}` (the trainer's classifier learning-rate multiplier finds them by name).

    Example:
    ```python
    aspp = ASPP(input_channels=2048, rates=(6, 12, 18), filters=256)  # DeepLabv3 at stride 16
    outputs = aspp(features)  # [B, H/16, W/16, 256]
    aspp_l = ASPP(input_channels=2048, rates=(6, 12, 18, 24), filters=21, mode="sum")
    ```
    """

    def __init__(self, input_channels: int, rates: tuple, filters: int = 256, mode: str = "concat",
                 kernel_size: int = 3, image_pooling: bool = True, separable: bool = False,
                 branch_channels: int = 0, dropout_rate: float = 0.5, batch_norm_momentum: float = 0.99,
                 align_corners: bool = False, name: str = "aspp", **kwargs):
        _check_arguments(mode, rates)
        rates = tuple(int(rate) for rate in rates)
        # === Functional Model ===
        features = keras.Input((None, None, input_channels), name=f"{name}_features")
        if mode == "concat":
            outputs = _concatenated_branches(features, rates, filters, image_pooling, separable,
                                             batch_norm_momentum, align_corners, name)
        else:
            outputs = _summed_branches(features, rates, filters, kernel_size, branch_channels, dropout_rate)
        super().__init__(features, outputs, name=name, **kwargs)
        # === Config ===
        self._store_config(input_channels=input_channels, rates=rates, filters=filters, mode=mode,
                           kernel_size=kernel_size, image_pooling=image_pooling,
                           separable=separable, branch_channels=branch_channels,
                           dropout_rate=dropout_rate, batch_norm_momentum=batch_norm_momentum,
                           align_corners=align_corners)


def _check_arguments(mode, rates):
    """Raises ValueError naming an invalid `mode` or `rates`."""
    if mode not in MODES:
        raise ValueError(f"ASPP `mode` must be one of {MODES}. Received: mode={mode!r}")
    if (not isinstance(rates, (tuple, list)) or len(set(rates)) != len(rates)
            or not all(isinstance(rate, int) and rate >= 1 for rate in rates)):
        raise ValueError(f"ASPP `rates` must be distinct positive ints. Received: rates={rates!r}")
    if mode == "sum" and not rates:
        raise ValueError("ASPP with mode='sum' needs at least one rate (one branch per rate)")


def _concatenated_branches(features, rates, filters, image_pooling, separable, momentum, align_corners, name):
    """Returns DeepLabv3's ASPP output [B, H, W, filters] (see `ASPP`)."""
    branches = [conv_bn_relu(features, filters, 1, f"{name}_1x1", batch_norm_momentum=momentum)]
    for index, rate in enumerate(rates, start=1):
        branches.append(conv_bn_relu(features, filters, 3, f"{name}_atrous{index}", rate=rate,
                                     batch_norm_momentum=momentum, separable=separable))
    if image_pooling:
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(features)
        pooled = conv_bn_relu(pooled, filters, 1, f"{name}_pool", batch_norm_momentum=momentum)
        branches.append(ResizeToMatch(align_corners=align_corners, name=f"{name}_pool_resize")([pooled, features]))
    x = keras.layers.Concatenate(name=f"{name}_concat")(branches) if len(branches) > 1 else branches[0]
    return conv_bn_relu(x, filters, 1, f"{name}_project", batch_norm_momentum=momentum)


def _summed_branches(features, rates, num_classes, kernel_size, branch_channels, dropout_rate):
    """Returns DeepLab v2's summed class scores [B, H, W, num_classes] (see `ASPP`)."""
    scores = []
    for rate in rates:
        x, scores_kernel, scores_rate = features, kernel_size, rate
        if branch_channels:
            x = AtrousConv2D(branch_channels, kernel_size, rate=rate, activation="relu", name=f"fc6_rate{rate}")(x)
            x = keras.layers.Dropout(dropout_rate, name=f"drop6_rate{rate}")(x)
            x = keras.layers.Conv2D(branch_channels, 1, activation="relu", name=f"fc7_rate{rate}")(x)
            x = keras.layers.Dropout(dropout_rate, name=f"drop7_rate{rate}")(x)
            scores_kernel, scores_rate = 1, 1  # fc8
        scores.append(AtrousConv2D(num_classes, scores_kernel, rate=scores_rate,
                                   kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                   name=f"logits_rate{rate}")(x))
    return scores[0] if len(scores) == 1 else keras.layers.Add(name="logits_sum")(scores)
