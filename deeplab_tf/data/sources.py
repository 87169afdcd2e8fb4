"""The example sources by name (`SOURCES`), `get_source(data_config)` and `dataset_info(name)`.

A source has an `info` attribute (`DatasetInfo`) and an `examples(split)` method returning a
deterministic `tf.data.Dataset` of dicts {"image": uint8 [H, W, 3] RGB, "label": uint8 [H, W]
(255 = ignore), "name": tf.string scalar}; it is built from a `DataConfig` and honours
`data_config.max_examples` (first N of a split). Its `records(split)` returns `(records,
decode)`: the same split before decoding (file paths, encoded bytes: cheap to shuffle and skip)
and the function that turns one record into the example `examples` gives (`examples(split)` is
`records.map(decode)`); the training pipeline shuffles records and decodes after. Datasets
stored as TFDS builders (voc2012_segmentation, pascal_context, pascal_person_part, camvid,
ade20k, cityscapes) are read through `tfds_source.TfdsSource`; their entries carry a
`TfdsDataset`.
"""

import dataclasses
import difflib
from typing import Callable

import deeplab_tf.data.tfds as tfds_builders
from deeplab_tf.data.camvid_folder import CamVidFolder
from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.data.synthetic_shapes import SyntheticShapes
from deeplab_tf.data.tfds import cityscapes
from deeplab_tf.data.tfds_source import TfdsDataset, TfdsSource


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One dataset of `SOURCES`: how to build its source, and what it holds.

    Args:
        build: callable. `build(data_config)` returns the source.
        info: DatasetInfo. Classes, palette and ignore label, known without reading any data.
        tfds: TfdsDataset or None. For a dataset stored as a TFDS builder, how it maps onto
            the source contract. Defaults to `None`.
    """

    build: Callable
    info: DatasetInfo
    tfds: TfdsDataset | None = None


def _tfds(name: str, dataset: TfdsDataset) -> SourceSpec:
    """Returns the entry of TFDS dataset `name`; its info is `dataset.info`, else the classes
    our builder `name` stores."""
    return SourceSpec(TfdsSource.from_config, dataset.info or tfds_builders.BUILDERS[name].CLASSES,
                      dataset)


SOURCES = {
    "synthetic_shapes": SourceSpec(SyntheticShapes.from_config, SyntheticShapes.info),
    "camvid_folder": SourceSpec(CamVidFolder.from_config, CamVidFolder.info),
    **{name: _tfds(name, TfdsDataset(name)) for name in tfds_builders.BUILDERS},
    "cityscapes": _tfds("cityscapes", TfdsDataset(
        builder="cityscapes/semantic_segmentation",
        image_key="image_left",
        label_key="segmentation_label",
        name_key="image_id",
        info=cityscapes.CITYSCAPES_INFO,
        label_table=cityscapes.TRAIN_IDS,
        manual_files=cityscapes.CITYSCAPES_FILES,
        split_aliases={"val": "validation"},
    )),
}
"""Dataset name (as in `data.dataset`) -> `SourceSpec`."""


def get_spec(name: str) -> SourceSpec:
    """Returns the `SourceSpec` of dataset `name`.

    Raises ValueError naming the closest known name, if any, and all of them.
    """
    if name not in SOURCES:
        close = difflib.get_close_matches(str(name), SOURCES, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def tfds_dataset(name: str) -> TfdsDataset:
    """Returns the `TfdsDataset` of dataset `name`; raises ValueError as `get_spec` does, or
    naming the TFDS datasets if `name` is not one of them."""
    dataset = get_spec(name).tfds
    if dataset is None:
        tfds_names = sorted(n for n, spec in SOURCES.items() if spec.tfds is not None)
        raise ValueError(f"Dataset {name!r} is not stored as a TFDS builder. TFDS datasets: "
                         f"{', '.join(tfds_names)}")
    return dataset


def get_source(data_config):
    """Returns the source of dataset `data_config.dataset`, built from `data_config`.

    Raises ValueError (as `get_spec`) for an unknown name.
    """
    return get_spec(data_config.dataset).build(data_config)


def dataset_info(name: str) -> DatasetInfo:
    """Returns the classes, palette and ignore label of dataset `name` without preparing or
    reading any data. Raises ValueError (as `get_spec`) for an unknown name."""
    return get_spec(name).info
