"""Builds the model an experiment's `ModelConfig` describes, for any DeepLab architecture."""

import dataclasses

import keras

from deeplab_tf.config import ModelConfig
from deeplab_tf.layers.speed_choices import apply_speed_choices
from deeplab_tf.models.deeplab import build_deeplab
from deeplab_tf.models.deeplab_v2 import build_deeplab_v2
from deeplab_tf.models.multi_scale import build_multi_scale

ARCHITECTURES = ("deeplab_v2", "deeplab_v3", "deeplab_v3_plus")


@dataclasses.dataclass(frozen=True)
class BuiltModel:
    """`model`: images [B,H,W,3] -> logits [B,H,W,C], for evaluation and export.
    `training_model`: images -> list of logits to supervise (just [logits] without
    multi-scale inputs; [fused, per-scale...] with them). Both share their weights."""

    model: keras.Model
    training_model: keras.Model


def build_model(config: ModelConfig, num_classes: int) -> BuiltModel:
    """Returns the model of `config` with `num_classes` outputs.

    Raises ValueError naming an unknown `arch` (and the known ones) or another invalid field.
    """
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"model.arch={config.arch!r} is not one of {ARCHITECTURES}")
    network = (build_deeplab_v2 if config.arch == "deeplab_v2" else build_deeplab)(config, num_classes)
    apply_speed_choices(network, config.atrous_implementation, config.fused_batch_norm)
    if not config.msc_scales:
        return BuiltModel(network, keras.Model(network.input, [network.output], name=f"{network.name}_training"))
    fused, training = build_multi_scale(network, tuple(config.msc_scales))
    return BuiltModel(fused, training)
