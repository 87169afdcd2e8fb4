"""Streaming evaluation of a segmentation model over a split: confusion matrix -> IoU metrics."""

import time
from typing import Callable

import numpy as np
import tensorflow as tf

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.metrics import confusion_matrix, segmentation_metrics


def model_label_predictor(model) -> Callable:
    """Returns a function mapping an evaluation batch (dict with "image": normalised float32
    [B,H,W,3]) to predicted int32 labels [B,H,W], running `model` in inference mode."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def predict(images):
        return tf.argmax(model(images, training=False), axis=-1, output_type=tf.int32)

    return lambda batch: predict(batch["image"])


def evaluate(predict_labels: Callable, dataset: tf.data.Dataset, info: DatasetInfo, log=print) -> dict:
    """Runs `predict_labels` over `dataset` (batches with "label" int32 [B,H,W]) and returns
    `segmentation_metrics` of the accumulated confusion matrix plus "num_images",
    "class_names", "confusion_matrix" (nested lists) and "images_per_second"."""
    confusion = np.zeros((info.num_classes, info.num_classes), np.int64)
    num_images, start = 0, time.perf_counter()
    for batch in dataset:
        predictions = predict_labels(batch)
        confusion += confusion_matrix(batch["label"].numpy(), np.asarray(predictions), info.num_classes, info.ignore_label)
        num_images += int(batch["label"].shape[0])
    seconds = time.perf_counter() - start
    log(f"Evaluated {num_images} images in {seconds:.1f}s ({num_images / max(seconds, 1e-9):.1f} img/s)")
    return {
        **segmentation_metrics(confusion),
        "num_images": num_images,
        "class_names": list(info.class_names),
        "confusion_matrix": confusion.tolist(),
        "images_per_second": num_images / max(seconds, 1e-9),
    }


def format_table(results: dict) -> str:
    """Returns a plain-text table of per-class IoU followed by mIoU and pixel accuracy."""
    width = max(len(name) for name in results["class_names"] + ["pixel accuracy"])
    lines = [f"{'class':<{width}}  IoU"]
    for name, iou in zip(results["class_names"], results["per_class_iou"]):
        lines.append(f"{name:<{width}}  {'absent' if np.isnan(iou) else f'{iou:.4f}'}")
    lines.append(f"{'mIoU':<{width}}  {results['miou']:.4f}")
    lines.append(f"{'pixel accuracy':<{width}}  {results['pixel_accuracy']:.4f}")
    if results["absent_classes"]:
        absent = ", ".join(results["class_names"][i] for i in results["absent_classes"])
        lines.append(f"(excluded from the mean, absent from ground truth and prediction: {absent})")
    return "\n".join(lines)


def json_safe(value):
    """Returns `value` with every float NaN replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value
