"""The `ModelConfig` of the official DeepLabv3 MobileNetV2 (tensorflow/models `research/deeplab`),
written once: `experiments/official.py` makes it the model of its experiments, and
`official_mobilenet_v2.build_official_mobilenet_v2` builds it to receive the published weights.
Imports nothing but `deeplab_tf.config`, so experiments stay cheap to import.
"""

from deeplab_tf.config import ModelConfig


def official_model_config(depth_multiplier: float = 1.0, output_stride: int = 8) -> ModelConfig:
    """Returns the `ModelConfig` of the official DeepLabv3 MobileNetV2 at `depth_multiplier` and
    `output_stride` (8 or 16): Keras Applications' MobileNetV2 with slim's widths (1.0: rounded to
    multiples of 8; otherwise exactly `base * depth_multiplier`, DeepLab's `divisible_by=1`) and
    TF's run-time "SAME" padding, `ASPP` with no atrous branch (1x1 + image pooling + projection,
    256 channels), a 1x1 classifier, TF1's align-corners resizes."""
    return ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", backbone_alpha=depth_multiplier,
                       backbone_channel_divisor=8 if depth_multiplier == 1.0 else 1, backbone_padding="tf_same",
                       output_stride=output_stride, atrous_rates=(), multi_grid=(), aspp_filters=256,
                       align_corners=True, batch_norm_momentum=0.9997)
