"""Official scope names (tensorflow/models `research/deeplab`, slim MobileNetV2) of the layers of
the DeepLabv3 MobileNetV2 built from Keras Applications' MobileNetV2 and `deeplab_tf.layers.ASPP`.

One table for every format of the official MobileNetV2 weights: TF.js and TFLite (batch norms
folded, `official_weights.set_official_weights`), TF1 checkpoints and frozen graphs (`tf1_names`). Keras Applications names each convolution
`Conv1`, `expanded_conv_depthwise`, `block_N_expand|depthwise|project` and the batch norm after
it `bn_Conv1` or `<conv>_BN`; slim names the scope `MobilenetV2/Conv`,
`MobilenetV2/expanded_conv/depthwise`, `MobilenetV2/expanded_conv_N/expand|depthwise|project`.
"""

from deeplab_tf.models.deeplab import CLASSIFIER_LAYER

BLOCKS = 16
"""Inverted residual blocks after the first (`expanded_conv_1` ... `expanded_conv_16`)."""


def backbone_layers() -> list[tuple[str, str, str]]:
    """Returns [(official scope, Keras layer name, kind), ...] for every convolution of DeepLab's
    MobileNetV2 (up to `expanded_conv_16/project`), in graph order; kind is "conv" or "depthwise"."""
    layers = [("MobilenetV2/Conv", "Conv1", "conv"),
              ("MobilenetV2/expanded_conv/depthwise", "expanded_conv_depthwise", "depthwise"),
              ("MobilenetV2/expanded_conv/project", "expanded_conv_project", "conv")]
    for block in range(1, BLOCKS + 1):
        scope = f"MobilenetV2/expanded_conv_{block}"
        layers += [(f"{scope}/expand", f"block_{block}_expand", "conv"),
                   (f"{scope}/depthwise", f"block_{block}_depthwise", "depthwise"),
                   (f"{scope}/project", f"block_{block}_project", "conv")]
    return layers


def official_layers() -> list[tuple[str, str, str]]:
    """Returns [(official scope, Keras layer name, kind), ...] for every weighted layer of the
    official DeepLabv3 MobileNetV2 (no atrous ASPP branch), in graph order; kind is "conv",
    "depthwise", "projection" (ASPP's, whose input channels are in another order) or "logits"."""
    return backbone_layers() + [("aspp0", "aspp_1x1_conv", "conv"),
                                ("image_pooling", "aspp_pool_conv", "conv"),
                                ("concat_projection", "aspp_project_conv", "projection"),
                                ("logits/semantic", CLASSIFIER_LAYER, "logits")]


def batch_norm_layer(conv_layer: str) -> str:
    """Returns the name of the batch norm Keras Applications' MobileNetV2 puts after the
    convolution `conv_layer` (e.g. "bn_Conv1", "block_3_expand_BN")."""
    return "bn_Conv1" if conv_layer == "Conv1" else f"{conv_layer}_BN"
