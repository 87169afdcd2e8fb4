"""`SegmentationBuilder`: the shared base of the deeplab-tf TFDS builders.

Every builder stores the same three features:

- "image": the upstream JPEG/PNG bytes, unchanged (decoded to uint8 [H, W, 3]);
- "label": a grayscale PNG of class indices, 255 = ignore (decoded to uint8 [H, W, 1]);
- "name": the image id (tf.string).

Its `DatasetInfo.metadata` records `class_names`, `palette` and `ignore_label`, so a prepared
dataset describes its classes without the code (`info_from_metadata`).

A subclass sets `CLASSES` (a deeplab_tf `DatasetInfo`), `MANUAL_DOWNLOAD_INSTRUCTIONS`,
`HOMEPAGE`, `CITATION`, lists `Example`s per split in `_split_generators` and implements
`_read_label(example, size)`. Generation streams one example at a time: each image is fully
decoded once (a truncated file fails) and its label is checked against it (same size, values in
0..num_classes-1 or 255). Any failure raises naming the file; TFDS writes into a temporary
`<name>/incomplete.*` folder and deletes it on failure (renames it to `<name>/<version>` on
success), so a failed preparation leaves nothing that reads as prepared.
"""

import dataclasses
import inspect
import os

import tensorflow_datasets as tfds

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.data.tfds import label_io


@dataclasses.dataclass(frozen=True)
class Example:
    """One pair to convert: `name` (image id, the TFDS key), `image` and `label` file paths."""

    name: str
    image: str
    label: str


def segmentation_features() -> tfds.features.FeaturesDict:
    """Returns the features every builder shares: "image", "label" (1 channel, PNG), "name"."""
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png", use_colormap=True),
        "name": tfds.features.Text(),
    })


def class_metadata(info: DatasetInfo) -> tfds.core.MetadataDict:
    """Returns the JSON metadata recording `info`'s class names, palette and ignore label."""
    return tfds.core.MetadataDict(
        class_names=list(info.class_names),
        palette=[list(colour) for colour in info.palette],
        ignore_label=info.ignore_label,
    )


def info_from_metadata(name: str, metadata) -> DatasetInfo:
    """Returns the deeplab_tf `DatasetInfo` stored by `class_metadata` in a builder's metadata."""
    return DatasetInfo(
        name=name,
        class_names=tuple(metadata["class_names"]),
        palette=tuple(tuple(colour) for colour in metadata["palette"]),
        ignore_label=int(metadata["ignore_label"]),
    )


class SegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: features, metadata and validated example generation (see module doc)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    CLASSES: DatasetInfo
    HOMEPAGE = ""
    CITATION = ""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=inspect.getdoc(type(self)),
            features=segmentation_features(),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            metadata=class_metadata(self.CLASSES),
        )

    def _generate_examples(self, examples):
        """Yields (name, features) for each `Example`; skips those `_read_label` returns None for."""
        for example in examples:
            features = self._encode(example)
            if features is not None:
                yield example.name, features

    def _encode(self, example: Example) -> dict | None:
        """Returns the features of one example after checking it; raises naming the bad file."""
        for kind, path in (("image", example.image), ("label", example.label)):
            if not os.path.isfile(path):
                other = example.label if kind == "image" else example.image
                raise FileNotFoundError(
                    f"{self.name}: {kind} file {path} does not exist (its pair: {other})"
                )
        image, size = label_io.read_image(example.image)
        label = self._read_label(example, size)
        if label is None:
            return None
        label_io.check_label(label, size, self.CLASSES.num_classes, example.image, example.label)
        return {"image": image, "label": label_io.encode_png(label), "name": example.name}

    def _read_label(self, example: Example, size: tuple):
        """Returns uint8 [H, W] class indices (255 = ignore) for `example`, or None to skip it.

        `size` is the image's (height, width); the returned label is checked against it.
        """
        raise NotImplementedError
