"""Reading and checking the upstream files the builders convert: images, label PNGs, `.mat` files.

Every reader raises an error that names the file: `FileNotFoundError` for a missing file and
`ValueError` for one that cannot be decoded (truncated, wrong format) or holds values that are not
classes. Labels leave here as uint8 [H, W] class indices with 255 = ignore.
"""

import io
import os

import cv2
import numpy as np
from PIL import Image

from deeplab_tf.data.dataset_info import IGNORE_LABEL


def read_image(path: str) -> tuple[bytes, tuple[int, int]]:
    """Returns (the file's bytes, unchanged, (height, width)) after decoding it once completely.

    Raises FileNotFoundError if `path` does not exist and ValueError naming it if the file is not
    a complete JPEG/PNG image (e.g. truncated).
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = (image.height, image.width)
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None
    return data, size


def read_png_label(path: str) -> np.ndarray:
    """Returns the class indices stored in a single-channel PNG (palette or grayscale), [H, W].

    A palette PNG (VOC's `SegmentationClass`) gives its palette indices, not its colours. Raises
    ValueError naming the file for an unreadable file or a colour (RGB) label.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: label file does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            values = np.array(image)
    except Exception as error:
        raise ValueError(f"{path}: not a readable PNG label ({type(error).__name__}: {error})") from None
    if mode not in ("P", "L", "I", "I;16"):
        raise ValueError(
            f"{path}: label PNG has mode {mode!r}; expected one class index per pixel "
            "(a palette or grayscale PNG), not colours"
        )
    return values


def read_mat(path: str, variable: str):
    """Returns `variable` of a MATLAB v5 file, structs as attribute objects (scipy's mat_struct).

    Raises FileNotFoundError if `path` does not exist and ValueError naming it if it cannot be
    read or lacks `variable`.
    """
    import scipy.io  # Only the VOC-family builders read .mat files; scipy is slow to import.

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: annotation file does not exist")
    try:
        contents = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:
        raise ValueError(f"{path}: not a readable .mat file ({type(error).__name__}: {error})") from None
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(f"{path}: no variable {variable!r} (found {found})")
    return contents[variable]


def lookup_table(mapping: dict, size: int = 256) -> np.ndarray:
    """Returns an int16 [size] table: raw value -> class index (or 255); -1 for invalid values."""
    table = np.full([size], -1, np.int16)
    for raw, mapped in mapping.items():
        table[raw] = mapped
    return table


def map_values(raw, table: np.ndarray, path: str, expected: str) -> np.ndarray:
    """Returns uint8 [H, W] = table[raw]; ValueError naming `path` if a raw value is invalid.

    `expected` describes the valid raw values for the message, e.g. "0..20 or 255".
    """
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.size == 0:
        raise ValueError(f"{path}: label has shape {raw.shape}; expected [height, width]")
    if not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"{path}: label has dtype {raw.dtype}; expected integers")
    in_range = (raw >= 0) & (raw < len(table))
    mapped = np.where(in_range, table[np.clip(raw, 0, len(table) - 1)], -1)
    if (mapped < 0).any():
        bad = np.unique(raw[mapped < 0])
        raise ValueError(
            f"{path}: label values {bad[:10].tolist()} are not classes (expected {expected})"
        )
    return mapped.astype(np.uint8)


def check_label(label: np.ndarray, image_size, num_classes: int, image_path: str, label_path: str):
    """Raises ValueError naming the files if `label` is not `image_size` or holds a value that is
    neither a class index (< num_classes) nor the ignore label."""
    if label.shape != tuple(image_size):
        raise ValueError(
            f"label {label_path} is {label.shape[0]}x{label.shape[1]} but image {image_path} is "
            f"{image_size[0]}x{image_size[1]} (height x width)"
        )
    invalid = (label >= num_classes) & (label != IGNORE_LABEL)
    if invalid.any():
        raise ValueError(
            f"label {label_path} has values {np.unique(label[invalid])[:10].tolist()}; expected "
            f"0..{num_classes - 1} or {IGNORE_LABEL}"
        )


def encode_png(label: np.ndarray) -> bytes:
    """Returns uint8 [H, W] as grayscale PNG bytes (what the builders store as "label")."""
    ok, encoded = cv2.imencode(".png", label)
    if not ok:
        raise ValueError(f"could not encode a label of shape {label.shape} as PNG")
    return encoded.tobytes()


def voc_colormap(count: int) -> tuple:
    """Returns the PASCAL VOC colour map: `count` (r, g, b) tuples (bits of the index interleaved)."""
    colours = []
    for index in range(count):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def read_ids(path) -> list[str]:
    """Returns the ids listed one per line in `path` (first field of a line; blank lines skipped).

    Raises FileNotFoundError naming `path` if it does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: list file does not exist")
    with open(path) as lines:
        return [line.split()[0] for line in lines if line.strip()]
