"""`synthetic_shapes` source: generated 128x128 scenes of coloured, textured shapes (no download).

Classes: 0 background, 1 disk, 2 rectangle (axis-aligned or rotated), 3 triangle. Each image has
1-4 shapes of random size and position; they may overlap and later ones are drawn on top. A
shape class has its own hue family (disks red-orange-yellow, rectangles green, triangles
blue-violet) with a random hue, saturation and brightness inside it, and a random brightness
texture (stripes, checkerboard or noise). Backgrounds are low-saturation gradients, noise or
textures, so colour family and shape both separate the classes. Masks are drawn with cv2 without
anti-aliasing from the same geometry as the image, so every labelled pixel is exact.

Image `i` of a split is generated from `numpy.random.default_rng((seed_base, i))`: output is the
same bytes on every call and the first N images do not depend on how many are generated. Splits
"train" (1000 images, seed base 0) and "val" (200 images, seed base 1) never share an image.
"""

import functools
from typing import Callable

import cv2
import numpy as np
import tensorflow as tf

from deeplab_tf.data.dataset_info import DatasetInfo

IMAGE_SIZE = 128
SPLITS = {"train": (0, 1000), "val": (1, 200)}
"""Split name -> (seed base, number of images)."""

SYNTHETIC_INFO = DatasetInfo(
    name="synthetic_shapes",
    class_names=("background", "disk", "rectangle", "triangle"),
    palette=((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200)),
)

# OpenCV hue range (0..179, i.e. half degrees) of each shape class.
_HUE_RANGES = {1: (0, 22), 2: (45, 75), 3: (100, 130)}
_YX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)


class SyntheticShapes:
    """The embedded generated dataset.

    Args:
        max_examples: int. If > 0, only the first `max_examples` images of a split are
            generated. Defaults to 0 (all).
    """

    info = SYNTHETIC_INFO

    def __init__(self, max_examples: int = 0):
        self.max_examples = max_examples

    @classmethod
    def from_config(cls, data_config) -> "SyntheticShapes":
        """Returns the source for `data_config.max_examples` (`data_dir` is not used)."""
        return cls(data_config.max_examples)

    def examples(self, split: str) -> tf.data.Dataset:
        """Returns the split as a dataset of dicts, in index order.

        Each element: "image" uint8 [128, 128, 3] RGB, "label" uint8 [128, 128] in 0..3,
        "name" tf.string scalar "synthetic_shapes/<split>/<index:05d>".
        Raises ValueError for an unknown split.
        """
        if split not in SPLITS:
            raise ValueError(
                f"synthetic_shapes has no split {split!r}; valid splits: {sorted(SPLITS)}"
            )
        count = SPLITS[split][1]
        if self.max_examples > 0:
            count = min(count, self.max_examples)
        images, labels = generate_split(split, count)
        names = [f"synthetic_shapes/{split}/{i:05d}" for i in range(count)]
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels, "name": names})

    def records(self, split: str) -> tuple[tf.data.Dataset, Callable[[dict], dict]]:
        """Returns `(examples(split), identity)`: the examples are generated in memory, so they
        are their own records (see `sources.py`)."""
        return self.examples(split), lambda record: record


@functools.lru_cache(maxsize=None)
def generate_split(split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns the first `count` (images uint8 [N, 128, 128, 3], labels uint8 [N, 128, 128]).

    Cached per (split, count) for the process; the arrays are read-only.
    """
    seed_base = SPLITS[split][0]
    pairs = [generate_example(np.random.default_rng((seed_base, i))) for i in range(count)]
    images = np.stack([p[0] for p in pairs])
    labels = np.stack([p[1] for p in pairs])
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def generate_example(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Returns one scene drawn with `rng`: (image uint8 [128, 128, 3] RGB, label uint8 [128, 128]).

    Shapes are drawn in order, each overwriting the pixels (and labels) it covers; Gaussian pixel
    noise (sigma 4) is added to the whole image last.
    """
    image = _background(rng)
    label = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    for _ in range(rng.integers(1, 5)):
        class_id = int(rng.integers(1, 4))
        mask = _shape_mask(class_id, rng).astype(bool)
        image[mask] = _shape_colours(class_id, rng)[mask]
        label[mask] = class_id
    image += rng.normal(0.0, 4.0, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def _texture(rng: np.random.Generator, low: float) -> np.ndarray:
    """Returns a brightness factor float32 [128, 128] in [low, 1]: stripes, checker or noise."""
    kind = rng.integers(3)
    y, x = _YX
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(5, 20)
        pattern = 0.5 + 0.5 * np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period)
    elif kind == 1:
        cell = rng.integers(4, 17)
        pattern = ((x + rng.integers(cell)) // cell + (y + rng.integers(cell)) // cell) % 2
    else:
        noise = rng.uniform(0, 1, (IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
        pattern = cv2.GaussianBlur(noise, (0, 0), rng.uniform(0.5, 2.0))
        pattern = (pattern - pattern.min()) / max(float(np.ptp(pattern)), 1e-6)
    return (low + (1 - low) * pattern).astype(np.float32)


def _hsv_to_rgb(hue, saturation, value) -> np.ndarray:
    """Returns float32 [128, 128, 3] RGB for OpenCV-range HSV (scalars or [128, 128] arrays)."""
    hsv = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    hsv[..., 0], hsv[..., 1] = hue, saturation
    hsv[..., 2] = np.clip(value, 0, 255)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """Returns a low-saturation background float32 [128, 128, 3] (gradient, noise or texture)."""
    hue, saturation = rng.integers(180), rng.integers(0, 50)
    kind = rng.integers(3)
    if kind == 0:
        y, x = _YX / (IMAGE_SIZE - 1)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (x * np.cos(angle) + y * np.sin(angle) + 1.5) / 3.0
        start, end = rng.uniform(30, 230, 2)
        value = start + (end - start) * ramp
    elif kind == 1:
        value = rng.uniform(60, 220) + rng.normal(0, rng.uniform(10, 35), (IMAGE_SIZE, IMAGE_SIZE))
    else:
        value = rng.uniform(90, 240) * _texture(rng, low=rng.uniform(0.4, 0.8))
    return _hsv_to_rgb(hue, saturation, value)


def _shape_colours(class_id: int, rng: np.random.Generator) -> np.ndarray:
    """Returns float32 [128, 128, 3] RGB: the class's hue family, saturated, textured."""
    hue = rng.integers(*_HUE_RANGES[class_id], endpoint=True)
    value = rng.uniform(150, 255) * _texture(rng, low=rng.uniform(0.55, 0.85))
    return _hsv_to_rgb(hue, rng.integers(150, 256), value)


def _shape_mask(class_id: int, rng: np.random.Generator) -> np.ndarray:
    """Returns uint8 [128, 128], 1 inside one random disk, rectangle or triangle, else 0."""
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    center = rng.uniform(8, IMAGE_SIZE - 8, 2)
    if class_id == 1:
        radius = int(rng.integers(10, 33))
        center = tuple(int(c) for c in center)
        cv2.circle(mask, center, radius, 1, thickness=-1, lineType=cv2.LINE_8)
        return mask
    if class_id == 2:
        angle = 0.0 if rng.uniform() < 0.5 else rng.uniform(0, 90)
        corners = cv2.boxPoints((tuple(center), tuple(rng.uniform(16, 64, 2)), angle))
    else:
        angles = rng.uniform(0, 2 * np.pi) + np.radians([0, 120, 240] + rng.uniform(-25, 25, 3))
        corners = center + rng.uniform(14, 40) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cv2.fillPoly(mask, [np.rint(corners).astype(np.int32)], 1, lineType=cv2.LINE_8)
    return mask
