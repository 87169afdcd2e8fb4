"""Assembles the parts an experiment names: its dataset source, its model, its input normaliser,
after `deeplab_tf.validation.validate` has checked the experiment.

Training, evaluation and export all go through here, so they can never disagree about the model.
"""

import dataclasses
from typing import Callable

import keras

from deeplab_tf import backbones, data
from deeplab_tf.config import Experiment
from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.models import build_model
from deeplab_tf.validation import validate


@dataclasses.dataclass(frozen=True)
class Assembled:
    """What an experiment builds.

    `model`: normalised float32 images [B,H,W,3] -> logits [B,H,W,C] (evaluation, export).
    `training_model`: the same weights, images -> list of logits to supervise (one entry, or
    the fused and per-scale logits with multi-scale inputs). `info`: classes, palette, ignore
    label. `source`: examples by split (None when assembled without data). `normalize`: float32 pixels 0..255 -> model input.
    """

    model: keras.Model
    training_model: keras.Model
    info: DatasetInfo
    source: object
    normalize: Callable


def assemble(experiment: Experiment, output_stride: int = 0, dtype_policy: str = "float32",
             with_data: bool = True) -> Assembled:
    """Returns the model, dataset info, source and normaliser of `experiment`.

    `output_stride` > 0 builds the model at that output stride instead of the experiment's
    (same weights, e.g. DeepLabv3 trained at 16 and evaluated at 8). `dtype_policy` is the
    Keras dtype policy of the model's layers ("float32", "mixed_bfloat16", "mixed_float16",
    "float64"); the global policy is left as it was. The experiment is validated first
    (`validate`, ValueError listing every bad value), then the data source is resolved, so a
    missing dataset fails before the model is built. With `with_data=False` (export: the
    classes are all it needs) no data is looked for: `source` is None and `info` comes from the
    dataset registry.
    """
    validate(experiment, output_stride)
    source = data.get_source(experiment.data) if with_data else None
    info = source.info if with_data else data.dataset_info(experiment.data.dataset)
    model_config = experiment.model
    if output_stride:
        model_config = dataclasses.replace(model_config, output_stride=output_stride)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        built = build_model(model_config, info.num_classes)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return Assembled(
        model=built.model,
        training_model=built.training_model,
        info=info,
        source=source,
        normalize=backbones.get_normalizer(experiment.model.backbone),
    )
