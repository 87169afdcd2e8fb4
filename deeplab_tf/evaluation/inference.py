"""Test-time inference: class probabilities of uint8 images, with multi-scale and flipped passes
and tiled (sliding-window) prediction of large images.

A *scorer* maps RGB pixels [B, H, W, 3] in 0..255 (uint8 or float32) to float32 probabilities
[B, H, W, C] at the input resolution. `keras_scorer` and `saved_model_scorer` make one from a model
or an export of this project (the same computation: `model_probabilities`); `tiled` and
`multi_scale` wrap a scorer in another, and `padded` runs it on images padded to a fixed size (the
official DeepLab graphs' 513 crop). Compose them as `multi_scale(tiled(padded(scorer, ...), ...), ...)`,
so every scaled image is tiled, every window padded, and memory stays bounded by the window.

Example:
```python
scorer = multi_scale(tiled(keras_scorer(model, normalize), (513, 513), 128, stride=8), (0.75, 1.0, 1.25), flip=True)
labels = np.argmax(scorer(pixels), axis=-1)
```
"""

import math
from typing import Callable

import numpy as np
import tensorflow as tf

from deeplab_tf.config import FUSIONS


Scorer = Callable[[tf.Tensor], tf.Tensor]


def valid_scales(scales) -> bool:
    """Returns whether `scales` (test-time scales) is non-empty and every scale a finite number > 0
    (not NaN or infinity: the size of such a pass is undefined)."""
    return bool(scales) and all(math.isfinite(scale) and scale > 0 for scale in scales)


def model_probabilities(model, normalize, pixels) -> tf.Tensor:
    """Returns float32 softmax probabilities [B, H, W, C] of `model` (normalised images ->
    logits, any dtype policy) in inference mode on `normalize`(pixels), for float32 or uint8
    pixels [B, H, W, 3] in 0..255. The one softmax scoring of the project: the evaluator, the
    CRF parameter search and the exported signatures all call it."""
    logits = model(normalize(tf.cast(pixels, tf.float32)), training=False)
    return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)


def keras_scorer(model, normalize) -> Scorer:
    """Returns a scorer running `model_probabilities` in a tf.function (pixels of any batch
    and size, float32 or uint8)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def score(pixels):
        return model_probabilities(model, normalize, pixels)

    return lambda pixels: score(tf.cast(pixels, tf.float32))


def saved_model_scorer(export_dir: str) -> Scorer:
    """Returns a scorer calling the `serving_image_tensor` signature of the SavedModel in
    `export_dir` and returning its "probabilities". The signature takes uint8, so float pixels
    (resized by `multi_scale`) are rounded to the nearest integer first.

    Raises ValueError when the SavedModel has no such signature (not exported by this project).
    """
    loaded = tf.saved_model.load(export_dir)
    if "serving_image_tensor" not in loaded.signatures:
        raise ValueError(
            f"SavedModel {export_dir!r} has no 'serving_image_tensor' signature (signatures: "
            f"{sorted(loaded.signatures)}); export it with `python -m export.export_saved_model`"
        )
    signature = loaded.signatures["serving_image_tensor"]

    def score(pixels):
        pixels = tf.convert_to_tensor(pixels)
        if pixels.dtype != tf.uint8:
            pixels = tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)
        return signature(images=pixels)["probabilities"]

    score.saved_model = loaded  # the signature's variables live as long as the loaded object
    return score


def padded(scorer: Scorer, size, value) -> Scorer:
    """Returns a scorer running `scorer` on the pixels padded bottom/right with the RGB pixel
    `value` to at least `size` (height, width) and returning its probabilities cropped back to
    the input: float32 [B, H, W, C]. This is the official DeepLab graphs' input (`eval.pad_to_size`:
    `pad_to_bounding_box` to `max(size, image)` with the mean pixel, computed as they do, as
    `pad(pixels - value) + value`); their logits are resized to the padded image before the crop,
    as the model's own final resize does here. A side already at least `size` is not padded.
    Works eagerly and in a tf.function with unknown sizes. `size` (0, 0) returns `scorer` itself.
    Wrap a model's scorer (`keras_scorer`), not `saved_model_scorer`: an export pads inside its
    graph (`export.serving.ServingOptions.pad_to_size`), and its uint8 input would round 127.5.
    """
    if tuple(size) == (0, 0):
        return scorer
    fill = tf.constant(value, tf.float32)

    def score(pixels):
        pixels = tf.cast(pixels, tf.float32)
        height, width = tf.shape(pixels)[1], tf.shape(pixels)[2]
        paddings = [[0, 0], [0, tf.maximum(size[0] - height, 0)], [0, tf.maximum(size[1] - width, 0)], [0, 0]]
        probabilities = scorer(tf.pad(pixels - fill, paddings) + fill)
        return tf.convert_to_tensor(probabilities)[:, :height, :width]

    return score


def multi_scale(scorer: Scorer, scales=(1.0,), flip: bool = False, fusion: str = "mean",
                base_size=None) -> Scorer:
    """Returns a scorer fusing `scorer`'s probabilities over input `scales` and, with `flip`,
    left-right flipped inputs (flipped back before fusion): DeepLab's test-time augmentation,
    used by the evaluator and, inside the graph, by the exported signatures.

    Each pass runs on the pixels resized bilinearly (float32, not rounded) to `scale` times
    `base_size` (height, width; None = the input's own size), rounded half to even and at
    least 1, and its probabilities are resized bilinearly back to the input size. `fusion`
    "mean" averages the passes (DeepLabv3/v3+); "max" takes the per-pixel, per-class maximum
    over the passes and renormalises it to sum to 1 (DeepLab v2 MSC fuses the logits by max;
    an export only returns probabilities, so their maximum is taken). Works eagerly and in a
    tf.function with unknown sizes. A single scale 1.0 without flip or `base_size` is `scorer`
    itself.

    Raises ValueError for an unknown fusion or scales that are not `valid_scales`.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"Unknown fusion {fusion!r}; known: {', '.join(FUSIONS)}")
    if not valid_scales(scales):
        raise ValueError(f"Scales must be positive finite numbers, got {tuple(scales)}")
    if tuple(scales) == (1.0,) and not flip and base_size is None:
        return scorer

    def score(pixels):
        pixels = tf.convert_to_tensor(pixels)
        size = tf.shape(pixels)[1:3]
        base = tf.constant(base_size, tf.int32) if base_size is not None else size
        fused, passes = None, 0
        for scale in scales:
            resized = base_size is not None or scale != 1.0
            scaled = pixels
            if resized:  # float64: the rounding of Python's round(height * scale)
                scaled_size = tf.cast(tf.round(tf.cast(base, tf.float64) * scale), tf.int32)
                scaled = tf.image.resize(tf.cast(pixels, tf.float32), tf.maximum(scaled_size, 1), method="bilinear")
            for flipped in (False, True) if flip else (False,):
                probabilities = tf.convert_to_tensor(scorer(tf.reverse(scaled, [2]) if flipped else scaled))
                if flipped:
                    probabilities = tf.reverse(probabilities, [2])
                if resized:
                    probabilities = tf.image.resize(probabilities, size, method="bilinear")
                if fused is None:
                    fused = probabilities
                else:
                    fused = fused + probabilities if fusion == "mean" else tf.maximum(fused, probabilities)
                passes += 1
        if fusion == "mean":
            return fused / passes
        return fused / tf.reduce_sum(fused, axis=-1, keepdims=True)

    return score


def window_starts(length: int, window: int, overlap: int, stride: int = 1) -> list[int]:
    """Returns the start offsets of windows of `window` pixels covering `length` pixels, steps of
    `window - overlap` rounded down to a multiple of `stride` (at least `stride`) apart.

    Every start is a multiple of `stride`; the last is the first such multiple at or after
    `length - window` (exactly `length - window` when both are multiples of `stride`, otherwise
    that window is cut at `length`). One window (start 0) when `length <= window`.
    """
    if length <= window:
        return [0]
    step = max(stride, (window - overlap) // stride * stride)
    last = -(-(length - window) // stride) * stride
    return list(range(0, last, step)) + [last]


def window_spans(length: int, tile: int, overlap: int, stride: int = 1) -> list[tuple[int, int]]:
    """Returns the (start, stop) pixel spans of the windows `tiled` predicts along a side of
    `length` pixels: one span (0, `length`) when `length <= tile`, otherwise windows of `tile`
    rounded down to a multiple of `stride`, placed by `window_starts` and cut at `length`."""
    if length <= tile:
        return [(0, length)]
    window = tile // stride * stride
    return [(start, min(start + window, length)) for start in window_starts(length, window, overlap, stride)]


def distance_to_seams(shape, tile_size, overlap: int, stride: int = 1) -> np.ndarray:
    """Returns float64 [height, width]: per pixel of an image of `shape` (height, width), the
    distance in pixels to the nearest edge inside the image of the `tiled` windows covering it
    (`window_spans` with `tile_size` (height, width)); inf for a side predicted in one window."""
    distances = []
    for length, tile in zip(shape, tile_size):
        distance = np.full(length, np.inf)
        for start, stop in window_spans(length, tile, overlap, stride):
            inside = np.arange(start, stop)
            to_edges = np.full(stop - start, np.inf)
            if start > 0:
                to_edges = np.minimum(to_edges, inside - start)
            if stop < length:
                to_edges = np.minimum(to_edges, stop - 1 - inside)
            distance[start:stop] = np.minimum(distance[start:stop], to_edges)
        distances.append(distance)
    return np.minimum(distances[0][:, None], distances[1][None, :])


def tiled(scorer: Scorer, tile_size=(0, 0), overlap: int = 0, stride: int = 1) -> Scorer:
    """Returns a scorer predicting each window of `tile_size` (height, width) with `scorer` and
    averaging the probabilities where windows overlap.

    Windows overlap by at least `overlap` pixels and never leave the image; a side no longer
    than the window is covered by one window of the image's length, so an image no larger than
    `tile_size` is predicted whole (exactly `scorer`). Set `stride` to the network's output
    stride: window sizes are then rounded down to multiples of it (513 -> 512 at 8) and windows
    start at multiples of it (`window_spans`), so each window's feature grid and its bilinear
    upsampling coincide with those of the whole image. Then, on an image whose sides are
    multiples of `stride`, a network without global operations (no image pooling) gives in a
    window exactly its whole-image probabilities at every pixel at least its receptive-field
    radius away from the window's edges inside the image; only the seams differ. A window
    placed off that grid, or of another size, shifts the grid and changes the probabilities
    everywhere in it. Memory for the network is bounded by the window; the probabilities of
    the whole image are accumulated in NumPy. `tile_size` (0, 0) returns `scorer` itself.

    Raises ValueError when `overlap` is negative or not smaller than the window (rounded to a
    multiple of `stride`), or `stride` is not positive.
    """
    tile_height, tile_width = tile_size
    if tile_height <= 0 or tile_width <= 0:
        return scorer
    if stride < 1:
        raise ValueError(f"stride={stride} must be >= 1")
    smallest = min(tile_height, tile_width) // stride * stride
    if not 0 <= overlap < smallest:
        raise ValueError(f"tile_overlap={overlap} must be >= 0 and smaller than the window {tuple(tile_size)}"
                         + (f" rounded down to a multiple of stride {stride} ({smallest})" if stride > 1 else ""))

    def score(pixels):
        pixels = tf.convert_to_tensor(pixels)
        batch, height, width = pixels.shape[:3]
        total, count = None, np.zeros((1, height, width, 1), np.float32)
        for top, bottom in window_spans(height, tile_height, overlap, stride):
            for left, right in window_spans(width, tile_width, overlap, stride):
                window = (slice(None), slice(top, bottom), slice(left, right))
                probabilities = np.asarray(scorer(pixels[window]))
                if total is None:
                    total = np.zeros((batch, height, width, probabilities.shape[-1]), np.float32)
                total[window] += probabilities
                count[window] += 1
        return tf.constant(total / count)

    return score
