"""Evaluation reports: `eval.json`, `report.md`, the confusion-matrix and trimap PNGs, and the
overlays of the worst images (image | ground truth | prediction | errors). Drawn with OpenCV.
"""

import json
import math
import os

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (160, 160, 160)


def json_safe(value):
    """Returns `value` with every float NaN replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_json(path: str, results: dict) -> None:
    """Writes `results` to `path` as indented strict JSON (NaN -> null)."""
    with open(path, "w") as f:
        json.dump(json_safe(results), f, indent=2)


def _number(value, digits: int = 4) -> str:
    return "absent" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def markdown_report(results: dict) -> str:
    """Returns report.md: summary (with the paper's mIoU and the difference when known), per-class
    IoU (before/after CRF when CRF ran), and the boundary-band accuracy at a few widths."""
    before = results.get("before_crf")
    columns = [("no CRF", before), ("CRF", results)] if before else [("", results)]
    header = " | ".join(["metric"] + [name or "value" for name, _ in columns])
    settings = {k: v for k, v in results["config"]["eval"].items() if k != "trimap_widths"}
    lines = [f"# {results['experiment']} on {results['data']['dataset']}/{results['data']['split']}", "",
             f"Model: `{results['model']['source']}`. Images: {results['num_images']}. "
             f"Inference: {settings}.", "", f"| {header} |", "|" + " --- |" * (len(columns) + 1)]
    for key, title in (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"), ("mean_class_accuracy", "mean class accuracy")):
        lines.append(f"| {title} | " + " | ".join(_number(m[key]) for _, m in columns) + " |")
    paper = results["paper"]
    if paper["miou"]:
        difference = 100 * results["miou"] - paper["miou"]
        lines += ["", f"Paper: {paper['miou']:.2f} mIoU ({paper['source']}); this run: "
                      f"{100 * results['miou']:.2f} ({difference:+.2f})."]
    else:
        lines += ["", "Paper: no published number for this experiment."]
    lines += ["", "## Per-class IoU", "", f"| class | {' | '.join(name or 'IoU' for name, _ in columns)} |",
              "|" + " --- |" * (len(columns) + 1)]
    for index, name in enumerate(results["class_names"]):
        lines.append(f"| {name} | " + " | ".join(_number(m["per_class_iou"][index]) for _, m in columns) + " |")
    if results["absent_classes"]:
        absent = ", ".join(results["class_names"][i] for i in results["absent_classes"])
        lines += ["", f"Excluded from the mean (absent from both ground truth and prediction): {absent}."]
    if results.get("trimap"):
        lines += ["", "## Boundary band (trimap)", "", "| width (px) | pixel accuracy | mIoU |", "| --- | --- | --- |"]
        trimap = results["trimap"]
        for i, width in enumerate(trimap["widths"]):
            if width in (1, 2, 5, 10, 20, 30, 40) or i in (0, len(trimap["widths"]) - 1):
                lines.append(f"| {width} | {_number(trimap['pixel_accuracy'][i])} | {_number(trimap['miou'][i])} |")
    return "\n".join(lines) + "\n"


def confusion_image(confusion, class_names, cell: int = 36) -> np.ndarray:
    """Returns an RGB uint8 picture of the row-normalised confusion matrix (rows = ground truth),
    each cell shaded by its fraction and labelled in percent, class names on the left and top."""
    confusion = np.asarray(confusion, np.float64)
    fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n, margin = len(class_names), 12 + 8 * max(len(name) for name in class_names)
    image = np.full((margin + n * cell + 10, margin + n * cell + 10, 3), 255, np.uint8)
    for row in range(n):
        y = margin + row * cell
        cv2.putText(image, class_names[row], (4, y + cell // 2 + 4), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
        for column in range(n):
            x = margin + column * cell
            shade = int(255 * (1 - fractions[row, column]))
            image[y:y + cell, x:x + cell] = (shade, shade, 255)
            if confusion[row, column]:
                text_colour = WHITE if fractions[row, column] > 0.5 else BLACK
                cv2.putText(image, f"{100 * fractions[row, column]:.0f}", (x + 4, y + cell // 2 + 4), FONT, 0.35,
                            text_colour, 1, cv2.LINE_AA)
    names = np.full((n * cell, margin, 3), 255, np.uint8)
    for column in range(n):  # written as rows, then rotated to read bottom-up above each column
        cv2.putText(names, class_names[column], (4, column * cell + cell // 2 + 4), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    image[:margin, margin:margin + n * cell] = np.rot90(names)
    return image


def curve_image(widths, series: dict, title: str, size=(480, 640)) -> np.ndarray:
    """Returns an RGB uint8 line plot of `series` ({name: values in 0..1, NaN skipped}) against
    `widths`, with axes, ticks every 0.1 and a legend."""
    height, width = size
    left, right, top, bottom = 50, 20, 30, 40
    image = np.full((height, width, 3), 255, np.uint8)
    x_of = lambda w: int(left + (w - min(widths)) / max(max(widths) - min(widths), 1) * (width - left - right))  # noqa: E731
    y_of = lambda v: int(height - bottom - v * (height - top - bottom))  # noqa: E731
    for tick in range(11):
        y = y_of(tick / 10)
        cv2.line(image, (left, y), (width - right, y), (230, 230, 230), 1)
        cv2.putText(image, f"{tick / 10:.1f}", (8, y + 4), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    for w in widths[:: max(1, len(widths) // 8)]:
        cv2.putText(image, str(w), (x_of(w) - 6, height - bottom + 16), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), BLACK, 1)
    cv2.putText(image, title, (left, 20), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(image, "band width (pixels)", (width // 2 - 60, height - 8), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for index, (name, values) in enumerate(series.items()):
        colour = colours[index % len(colours)]
        points = [(x_of(w), y_of(v)) for w, v in zip(widths, values) if v is not None and not math.isnan(v)]
        if len(points) > 1:
            cv2.polylines(image, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(image, name, (left + 10, top + 18 + 16 * index), FONT, 0.4, colour, 1, cv2.LINE_AA)
    return image


def overlay_image(pixels, labels, predictions, palette, ignore_label: int = 255) -> np.ndarray:
    """Returns image | ground truth | prediction | errors side by side (RGB uint8 [H, 4W + 12, 3]).
    Ignored pixels are black in the ground truth and the error panel; errors are red on grey."""
    palette = np.asarray(list(palette) + [(0, 0, 0)], np.uint8)
    labels = np.asarray(labels)
    ignored = labels == ignore_label
    truth = palette[np.where(ignored, len(palette) - 1, labels)]
    predicted = palette[np.asarray(predictions)]
    errors = (np.asarray(pixels, np.float32) * 0.4 + 60).astype(np.uint8)
    errors[(labels != predictions) & ~ignored] = (255, 0, 0)
    errors[ignored] = 0
    gap = np.full((labels.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([pixels, gap, truth, gap, predicted, gap, errors], axis=1)


def write_png(path: str, image) -> None:
    """Writes uint8 `image`, [H, W] grey or [H, W, 3] RGB, as a PNG file at `path`, creating its
    folder. Raises ValueError naming the shape or dtype it cannot write, OSError when writing
    fails (encoded by OpenCV, written by Python: `cv2.imwrite` would only return False)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"cannot write {path}: a PNG here is uint8 [H, W] or [H, W, 3], "
                         f"got {image.dtype} {list(image.shape)}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(encoded.tobytes())
