"""`TfdsSource`: a dataset stored as a TFDS builder, as a pipeline source (see `sources.py`).

    DataConfig(dataset="voc2012_segmentation", data_dir="/data/voc", train_split="train_aug")

- `data.dataset`: a name of `sources.SOURCES` that has a `TfdsDataset` (the deeplab-tf builders,
  and `cityscapes` through TFDS's own `cityscapes/semantic_segmentation` builder mapped to the
  19 training ids).
- `data.data_dir`: the TFDS manual dir holding the upstream files (archives or extracted
  folders; for `camvid` the SegNet-layout folder). Needed only until the dataset is prepared.
- Prepared records live in the TFDS data dir: `data.tfds_data_dir` if set, else the
  `TFDS_DATA_DIR` environment variable, else TFDS's default `~/tensorflow_datasets`. Archives are extracted (once) under `<that dir>/downloads/extracted`.

Creating the source prepares the dataset if needed (TFDS writes into a temporary folder and renames
it when complete, so an interrupted or failed preparation is redone from scratch next time);
nothing is ever downloaded. Examples follow the source contract: "image" uint8 [H, W, 3], "label"
uint8 [H, W] (255 = ignore), "name" tf.string, in TFDS's stored order (fixed, key-hash order).
"""

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import deeplab_tf.data.tfds as deeplab_builders  # registers the builders with TFDS
from deeplab_tf.data.dataset_info import DatasetInfo


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsDataset:
    """How a TFDS dataset maps onto the source contract.

    Args:
        builder: str. TFDS builder name, with config if any ("cityscapes/semantic_segmentation").
        image_key, label_key, name_key: str. Feature names of the image, label and id.
        info: DatasetInfo or None. Classes; None for our builders, which store their
            `CLASSES` in the prepared records' metadata, where `TfdsSource` reads them.
        label_table: uint8 ndarray [256] or None. Stored label value -> class index or 255.
        manual_files: tuple of ManualFile. Files checked in the manual dir before preparing
            (for builders that are not ours and report missing files less clearly).
        split_aliases: dict. Our split name -> the builder's ({"val": "validation"}).
    """

    builder: str
    image_key: str = "image"
    label_key: str = "label"
    name_key: str = "name"
    info: DatasetInfo | None = None
    label_table: np.ndarray | None = None
    manual_files: tuple = ()
    split_aliases: dict = dataclasses.field(default_factory=dict)


def tfds_data_dir(data_config) -> str:
    """Returns the TFDS data dir for `data_config` ("" = TFDS's default ~/tensorflow_datasets)."""
    return data_config.tfds_data_dir or os.environ.get("TFDS_DATA_DIR", "")


# How a user sets (the manual dir, the TFDS data dir): an experiment's fields, named in errors.
EXPERIMENT_SETTINGS = ("data.data_dir", "data.tfds_data_dir")


def prepare(builder, manual_dir: str, required=(), manual_dir_setting: str = EXPERIMENT_SETTINGS[0]) -> None:
    """Prepares `builder` from the files in `manual_dir`; never downloads.

    Raises ValueError if `manual_dir` is empty (naming `manual_dir_setting`, how the user sets
    it: "data.data_dir" or a flag such as "--manual_dir"), FileNotFoundError naming missing files
    (with where they come from), and whatever the builder raises for a bad file (naming it).
    """
    name = builder.info.full_name
    text = builder.MANUAL_DOWNLOAD_INSTRUCTIONS or ""
    if not manual_dir:
        example = manual_dir_setting if manual_dir_setting.startswith("--") else f"--override={manual_dir_setting}"
        raise ValueError(
            f"{name} is not prepared in {builder.data_dir_root}. Set {manual_dir_setting} (the TFDS "
            f"manual dir) to the folder holding its files, e.g. {example}=PATH.\n{text}"
        )
    if not os.path.isdir(manual_dir):
        raise FileNotFoundError(f"{name}: manual dir {manual_dir!r} is not a folder.\n{text}")
    missing = [
        f for f in required if not any(os.path.isfile(os.path.join(manual_dir, a)) for a in f.archives)
    ]
    if missing:
        raise FileNotFoundError(
            f"{name}: missing in the manual dir {manual_dir}:\n"
            + "\n".join(f.instruction() for f in missing)
        )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    )


MANUAL_DIR_RECORD = "deeplab_tf_manual_dir.txt"


def _record_manual_dir(builder, manual_dir: str) -> None:
    """Writes which manual dir the prepared records were built from, beside them."""
    with open(os.path.join(builder.data_dir, MANUAL_DIR_RECORD), "w") as f:
        f.write(os.path.abspath(manual_dir))


def _check_manual_dir(builder, manual_dir: str, settings: tuple = EXPERIMENT_SETTINGS) -> None:
    """Raises ValueError when `builder` was prepared from another manual dir than `manual_dir`,
    so records of one folder are never silently read for another, naming `settings` (how the
    user sets the manual dir and the TFDS data dir, as `TfdsSource` takes them). Records prepared
    outside deeplab-tf (no record file) and an empty `manual_dir` are accepted."""
    path = os.path.join(builder.data_dir, MANUAL_DIR_RECORD)
    if not manual_dir or not os.path.exists(path):
        return
    with open(path) as f:
        recorded = f.read().strip()
    if recorded != os.path.abspath(manual_dir):
        raise ValueError(
            f"{builder.info.full_name} is already prepared in {builder.data_dir} from {recorded}, but "
            f"{settings[0]} is now {os.path.abspath(manual_dir)}. Delete {builder.data_dir} to prepare "
            f"it from the new folder, or point TFDS_DATA_DIR (or {settings[1]}) elsewhere."
        )


class TfdsSource:
    """Examples of a prepared TFDS dataset, preparing it first if needed.

    Args:
        dataset: str. A name of `sources.SOURCES` that has a `TfdsDataset`.
        manual_dir: str. Folder with the upstream files; only read when preparing.
        data_dir: str. TFDS data dir of the prepared records. Defaults to "" (TFDS's default).
        max_examples: int. If > 0, only the first `max_examples` examples of a split. Defaults
            to 0 (all).
        settings: tuple. How the user sets `manual_dir` and `data_dir`, as errors name them.
            Defaults to `EXPERIMENT_SETTINGS` (`data.data_dir`, `data.tfds_data_dir`);
            `prepare_data` passes its flags.
    """

    def __init__(self, dataset: str, manual_dir: str = "", data_dir: str = "", max_examples: int = 0,
                 settings: tuple = EXPERIMENT_SETTINGS):
        # `sources` imports this module (its registry builds TfdsSource): imported at call time.
        from deeplab_tf.data.sources import tfds_dataset

        self.spec = tfds_dataset(dataset)
        self.builder = tfds.builder(self.spec.builder, data_dir=data_dir or None)
        if not self.builder.is_prepared():
            prepare(self.builder, manual_dir, self.spec.manual_files, settings[0])
            _record_manual_dir(self.builder, manual_dir)
        else:
            _check_manual_dir(self.builder, manual_dir, settings)
        self.info = self.spec.info or deeplab_builders.info_from_metadata(
            dataset, self.builder.info.metadata
        )
        self.max_examples = max_examples

    @classmethod
    def from_config(cls, data_config) -> "TfdsSource":
        """Returns the source for `data_config` (dataset, data_dir as manual dir, max_examples)."""
        return cls(
            data_config.dataset, data_config.data_dir, tfds_data_dir(data_config),
            data_config.max_examples,
        )

    def examples(self, split: str) -> tf.data.Dataset:
        """Returns `split` (any TFDS split string, e.g. "train" or "val[:10]") as source dicts.

        Raises ValueError naming the prepared splits for an unknown split.
        """
        records, decode = self.records(split)
        return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    def records(self, split: str) -> tuple[tf.data.Dataset, Callable[[dict], dict]]:
        """Returns `(records, decode)`: the stored examples of `split` with the image and label
        still encoded (tf.string), in stored order, and `decode(record)`, the source dict
        `examples` gives for it. Raises ValueError as `examples` does."""
        splits, base = self.builder.info.splits, split.split("[")[0]
        if base in self.spec.split_aliases:
            split = self.spec.split_aliases[base] + split[len(base):]
        if split.split("[")[0] not in splits:
            raise ValueError(
                f"{self.builder.info.full_name} has no split {split!r}; prepared splits: "
                f"{', '.join(sorted(splits))} (in {self.builder.data_dir})"
            )
        spec = self.spec
        records = self.builder.as_dataset(
            split=split, shuffle_files=False, read_config=tfds.ReadConfig(try_autocache=False),
            decoders={spec.image_key: tfds.decode.SkipDecoding(), spec.label_key: tfds.decode.SkipDecoding()},
        )
        if self.max_examples > 0:
            records = records.take(self.max_examples)
        features = self.builder.info.features
        table = None if spec.label_table is None else tf.constant(spec.label_table, tf.uint8)

        def decode(record):
            label = features[spec.label_key].decode_example(record[spec.label_key])[..., 0]
            if table is not None:
                label = tf.gather(table, tf.cast(label, tf.int32))
            image = features[spec.image_key].decode_example(record[spec.image_key])
            return {"image": image, "label": label, "name": record[spec.name_key]}

        return records, decode

