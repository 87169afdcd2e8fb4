"""DeepLabv3+'s decoder (arXiv:1802.02611, Sec. 3.1) as a serialisable Keras layer."""

import keras

from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.resize import ResizeToMatch
from deeplab_tf.layers.speed_choices import ConfiguredSubModel


@keras.saving.register_keras_serializable(package="deeplab_tf")
class DeepLabV3PlusDecoder(ConfiguredSubModel):
    """Fuses the encoder output with stride-4 backbone features (DeepLabv3+).

    Reference: [DeepLabv3+](https://arxiv.org/abs/1802.02611). The encoder output is upsampled
    bilinearly to the low-level features' size and concatenated with a 1x1 conv-BN-ReLU
    projection of them, then refined by two 3x3 conv-BN-ReLU (atrous separable convolutions
    with `separable`). A functional sub-model, as `deeplab_tf.layers.ASPP` (batch norms
    foldable for export). Layers are named `decoder_low_level`, `decoder_upsample`,
    `decoder_concat`, `decoder_conv1`, `decoder_conv2`.

    Args:
        encoder_channels: int. Channels of the encoder (ASPP) output.
        low_level_channels: int. Channels of the stride-4 backbone features ("P2").
        low_level_filters: int. Channels of the low-level projection. Defaults to 48.
        filters: int. Channels of the two refining convolutions and of the output.
            Defaults to 256.
        separable: bool. Refine with atrous separable convolutions. Defaults to False.
        batch_norm_momentum: float. Momentum of the batch norms. Defaults to 0.99.
        align_corners: bool. Upsample as TF1's `resize_bilinear(align_corners=True)`
            (`ResizeToMatch`), as the official DeepLab decoder. Defaults to False.
        name: str. Defaults to "decoder".

    Returns (when called on `[encoder_output, low_level_features]`): a float Keras tensor
    [B, H/4, W/4, filters] at the low-level features' resolution.

    Example:
    ```python
    decoder = DeepLabV3PlusDecoder(encoder_channels=256, low_level_channels=24)
    x = decoder([aspp_output, features["P2"]])
    ```
    """

    def __init__(self, encoder_channels: int, low_level_channels: int, low_level_filters: int = 48,
                 filters: int = 256, separable: bool = False, batch_norm_momentum: float = 0.99,
                 align_corners: bool = False, name: str = "decoder", **kwargs):
        # === Functional Model ===
        encoder_output = keras.Input((None, None, encoder_channels), name=f"{name}_encoder_output")
        low_level = keras.Input((None, None, low_level_channels), name=f"{name}_low_level_features")
        projected = conv_bn_relu(low_level, low_level_filters, 1, "decoder_low_level",
                                 batch_norm_momentum=batch_norm_momentum)
        x = ResizeToMatch(align_corners=align_corners, name="decoder_upsample")([encoder_output, projected])
        x = keras.layers.Concatenate(name="decoder_concat")([x, projected])
        for index in (1, 2):
            x = conv_bn_relu(x, filters, 3, f"decoder_conv{index}", batch_norm_momentum=batch_norm_momentum,
                             separable=separable)
        super().__init__([encoder_output, low_level], x, name=name, **kwargs)
        # === Config ===
        self._store_config(encoder_channels=encoder_channels,
                           low_level_channels=low_level_channels,
                           low_level_filters=low_level_filters, filters=filters,
                           separable=separable, batch_norm_momentum=batch_norm_momentum,
                           align_corners=align_corners)
