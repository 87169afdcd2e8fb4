"""Registry of example sources: `SOURCES` and `get_source(data_config)`.

A source has an `info` attribute (`DatasetInfo`) and an `examples(split)` method returning a
deterministic `tf.data.Dataset` of dicts {"image": uint8 [H, W, 3] RGB, "label": uint8 [H, W]
(255 = ignore), "name": tf.string scalar}. Each source class builds itself with
`from_config(data_config)`, which honours `data_config.max_examples` (first N of a split).
Datasets stored as TFDS builders (`TFDS_SOURCES`: voc2012_segmentation, pascal_context,
pascal_person_part, camvid, ade20k, cityscapes) are read through `tfds_source.TfdsSource`.
"""

import difflib

import deeplab_tf.data.tfds as tfds_builders

from deeplab_tf.data.camvid_folder import CamVidFolder
from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.data.synthetic_shapes import SyntheticShapes
from deeplab_tf.data.tfds_source import TFDS_SOURCES, TfdsSource

SOURCES = {
    "synthetic_shapes": SyntheticShapes,
    "camvid_folder": CamVidFolder,
}


def get_source(data_config):
    """Returns the source named `data_config.dataset`, built from `data_config`.

    Raises ValueError listing the known names and the closest match for an unknown name.
    """
    name = data_config.dataset
    if name in TFDS_SOURCES:
        return TfdsSource.from_config(data_config)
    if name not in SOURCES:
        close = difflib.get_close_matches(name, [*SOURCES, *TFDS_SOURCES], n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(SOURCES))}; "
            f"TFDS datasets: {', '.join(sorted(TFDS_SOURCES))}"
        )
    return SOURCES[name].from_config(data_config)


def dataset_info(name: str) -> DatasetInfo:
    """Returns the classes, palette and ignore label of dataset `name` without preparing or
    reading any data. Raises ValueError (as `get_source`) for an unknown name."""
    if name in SOURCES:
        return SOURCES[name].info
    if name in TFDS_SOURCES:
        spec = TFDS_SOURCES[name]
        return spec.info or tfds_builders.BUILDERS[name].CLASSES
    raise ValueError(f"Unknown dataset {name!r}. Known: {', '.join(sorted([*SOURCES, *TFDS_SOURCES]))}")
