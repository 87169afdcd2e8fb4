"""Assembles the parts an experiment names: its dataset source, its model, its input normaliser.

Training, evaluation and export all go through here, so they can never disagree about the model.
"""

import dataclasses
from typing import Callable

import keras

from deeplab_tf import backbones, data
from deeplab_tf.config import Experiment
from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.models import build_deeplab


@dataclasses.dataclass(frozen=True)
class Assembled:
    """What an experiment builds: `model` (normalised float32 [B,H,W,3] -> logits
    [B,H,W,C]), `info` (classes, palette, ignore label), `source` (examples by split) and
    `normalize` (float32 pixels 0..255 -> model input)."""

    model: keras.Model
    info: DatasetInfo
    source: object
    normalize: Callable


def assemble(experiment: Experiment) -> Assembled:
    """Returns the model, dataset info, source and normaliser of `experiment`.

    The data source is resolved first so a missing dataset fails before the model is built.
    """
    source = data.get_source(experiment.data)
    model = build_deeplab(experiment.model, source.info.num_classes)
    return Assembled(
        model=model,
        info=source.info,
        source=source,
        normalize=backbones.get_normalizer(experiment.model.backbone),
    )
