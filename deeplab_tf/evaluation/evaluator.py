"""Streaming evaluation of a segmentation model over a split: confusion matrices before and after
an optional refinement (the dense CRF), boundary-band (trimap) accuracy, and the worst images.

Nothing per image is kept except the `WorstImages` candidates, so memory does not grow with the
split.
"""

import hashlib
import heapq
import itertools
import sys
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics
from deeplab_tf.evaluation.trimap import TrimapAccumulator

Refine = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A refinement hook: (pixels uint8 [H, W, 3], probabilities [H, W, C]) -> probabilities [H, W, C]."""


def model_label_predictor(model) -> Callable:
    """Returns a function mapping an evaluation batch (dict with "image": normalised float32
    [B,H,W,3]) to predicted int32 labels [B,H,W], running `model` in inference mode."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(images):
        return tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)

    return lambda batch: predict(batch["image"])


def crf_refiner(params=None, backend: str = "tensorflow") -> Refine:
    """Returns the `Refine` hook of DeepLab's dense CRF (`deeplab_tf.crf.refine`) with `params`
    (a `DenseCRFParams`; None = the published VOC settings) and `backend`."""
    from deeplab_tf import crf

    params = params or crf.DenseCRFParams()
    if backend not in crf.BACKENDS:
        raise ValueError(f"Unknown CRF backend {backend!r}; known: {', '.join(crf.BACKENDS)}")
    return lambda pixels, probabilities: crf.refine(pixels, probabilities, params, backend)


class WorstImages:
    """Keeps the `capacity` images with the lowest mIoU seen so far (and nothing else)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._heap = []  # (-miou, arrival, entry): the best kept image is at the top
        self._arrivals = itertools.count()

    def add(self, miou: float, **entry) -> None:
        """Offers an image (`entry`: name, pixels, label, prediction, ...) with its mIoU."""
        if self.capacity <= 0 or np.isnan(miou):
            return
        item = (-miou, next(self._arrivals), dict(entry, miou=miou))
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, item)
        elif miou < -self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def entries(self) -> list[dict]:
        """Returns the kept images, lowest mIoU first."""
        return [entry for _, _, entry in sorted(self._heap, key=lambda item: (-item[0], item[1]))]


class _Column:
    """One set of predictions (e.g. before or after CRF): its confusion matrix and trimap bands."""

    def __init__(self, info: DatasetInfo, trimap_widths):
        self.info = info
        self.confusion = np.zeros((info.num_classes, info.num_classes), np.int64)
        self.trimap = TrimapAccumulator(info.num_classes, trimap_widths, info.ignore_label) if trimap_widths else None

    def add(self, label, prediction) -> np.ndarray:
        confusion = confusion_matrix(label, prediction, self.info.num_classes, self.info.ignore_label)
        self.confusion += confusion
        if self.trimap:
            self.trimap.add(label, prediction)
        return confusion

    def result(self) -> dict:
        trimap = {"trimap": self.trimap.result()} if self.trimap else {}
        return {**segmentation_metrics(self.confusion), "confusion_matrix": self.confusion.tolist(), **trimap}


def progress_bar(total: int = 0, stream=None, interval: float = 30.0, label: str = "") -> Callable:
    """Returns progress(done, seconds) reporting `label[####    ] done/total  x img/s  ETA m:ss`
    on `stream` (default: sys.stderr when called; no bar and no ETA when `total` is unknown, 0).

    On a terminal the line is redrawn in place at every call. Elsewhere (a log file, a pipe) a
    line is written at the first call, then at most every `interval` seconds and when `done`
    reaches `total`, so a log holds a few lines rather than one redrawn many times.
    """
    stream = stream or sys.stderr
    terminal = stream.isatty()
    last_line = None  # `seconds` of the last line written off a terminal

    def progress(done: int, seconds: float) -> None:
        nonlocal last_line
        line = label + progress_line(done, seconds, total)
        if terminal:
            stream.write("\r" + line + ("\n" if done == total else ""))
        elif done == total or last_line is None or seconds - last_line >= interval:
            stream.write(line + "\n")
            last_line = seconds
        stream.flush()

    return progress


def progress_line(done: int, seconds: float, total: int = 0) -> str:
    """Returns `[####    ] done/total  x img/s  ETA m:ss` after `done` images in `seconds`, or
    `done images  x img/s` when `total` is unknown (0)."""
    rate = done / max(seconds, 1e-9)
    if not total:
        return f"{done} images  {rate:.2f} img/s"
    filled = int(30 * done / total)
    eta = int((total - done) / max(rate, 1e-9))
    return f"[{'#' * filled}{' ' * (30 - filled)}] {done}/{total}  {rate:.2f} img/s  ETA {eta // 60}:{eta % 60:02d}"


def evaluate(
    predict: Callable,
    dataset: tf.data.Dataset,
    info: DatasetInfo,
    log=print,
    refine: Refine | None = None,
    trimap_widths=(),
    worst: WorstImages | None = None,
    progress: Callable | None = None,
) -> dict:
    """Runs `predict` over `dataset` and returns the metrics of the accumulated predictions.

    Args:
        predict: callable. An evaluation batch (see `build_eval_dataset`) -> probabilities
            [B,H,W,C] or labels int [B,H,W] (labels only without `refine`).
        dataset: tf.data.Dataset of batches with "pixels", "label" int32 [B,H,W] and "name".
        info: `DatasetInfo`. Number of classes, names, ignore label.
        log: callable taking a line of text. Defaults to print.
        refine: a `Refine` hook (e.g. `crf_refiner()`) applied to each image's probabilities;
            the result then holds the refined metrics and "before_crf" the unrefined ones.
        trimap_widths: band widths for boundary accuracy (`deeplab_tf.evaluation.trimap`); () = off.
        worst: `WorstImages` receiving every image (name, pixels, label, prediction) and its mIoU.
        progress: callable(images_done, seconds), e.g. `progress_bar(total)`.

    Returns `segmentation_metrics` of the final predictions plus "confusion_matrix", "trimap"
    (when widths are given), "before_crf" (with `refine`), "num_images", "class_names",
    "names_sha1" (of the image names in order: which data was evaluated) and "images_per_second".
    """
    columns = [_Column(info, trimap_widths)] + ([_Column(info, trimap_widths)] if refine else [])
    names_hash, num_images, start = hashlib.sha1(), 0, time.perf_counter()
    for batch in dataset:
        scores = np.asarray(predict(batch))
        if refine and scores.ndim != 4:
            raise ValueError("CRF refinement needs probabilities [B,H,W,C] from `predict`, got labels")
        labels, pixels = batch["label"].numpy(), batch["pixels"].numpy()
        for index, name in enumerate(batch["name"].numpy()):
            predictions = [scores[index] if scores.ndim == 3 else np.argmax(scores[index], axis=-1)]
            if refine:
                predictions.append(np.argmax(refine(pixels[index], scores[index]), axis=-1))
            for column, prediction in zip(columns, predictions):
                confusion = column.add(labels[index], prediction)
            if worst is not None:
                worst.add(segmentation_metrics(confusion)["miou"], name=name.decode(), pixels=pixels[index],
                          label=labels[index], prediction=predictions[-1])
            names_hash.update(name + b"\n")
            num_images += 1
        if progress:
            progress(num_images, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    log(f"Evaluated {num_images} images in {seconds:.1f}s ({num_images / max(seconds, 1e-9):.2f} img/s)")
    return {
        **columns[-1].result(),
        **({"before_crf": columns[0].result()} if refine else {}),
        "num_images": num_images,
        "class_names": list(info.class_names),
        "names_sha1": names_hash.hexdigest(),
        "images_per_second": num_images / max(seconds, 1e-9),
    }


def format_table(results: dict) -> str:
    """Returns a plain-text table of per-class IoU followed by mIoU and pixel accuracy (with a
    "no CRF" column when the results hold "before_crf")."""
    before = results.get("before_crf")
    cell = lambda value: "absent" if np.isnan(value) else f"{value:.4f}"  # noqa: E731
    width = max(len(name) for name in results["class_names"] + ["mean class accuracy"])
    lines = [f"{'class':<{width}}  " + ("no CRF  CRF" if before else "IoU")]
    for index, name in enumerate(results["class_names"]):
        values = ([before["per_class_iou"][index]] if before else []) + [results["per_class_iou"][index]]
        lines.append(f"{name:<{width}}  " + "  ".join(cell(v) for v in values))
    for key, title in (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"), ("mean_class_accuracy", "mean class accuracy")):
        values = ([before[key]] if before else []) + [results[key]]
        lines.append(f"{title:<{width}}  " + "  ".join(cell(v) for v in values))
    if results["absent_classes"]:
        absent = ", ".join(results["class_names"][i] for i in results["absent_classes"])
        lines.append(f"(excluded from the mean, absent from ground truth and prediction: {absent})")
    return "\n".join(lines)
