"""Writes RUN_DIR/results.md from the evaluations `bench/camvid.sh` made, and prints it.

    python -m bench.camvid_results RUN_DIR

Reads RUN_DIR/val_single/eval.json and RUN_DIR/val_msflip/eval.json (each evaluated with the CRF,
so each holds the refined metrics and, under "before_crf", the unrefined ones),
RUN_DIR/val_saved_model/eval.json (the export, single scale), RUN_DIR/timings.tsv,
RUN_DIR/provenance.txt (the CPU and code of each run of camvid.sh) and the
trainer's event files in RUN_DIR/train (the rates it logged: the training time of every run, a
run cut short and then resumed included). Also
writes RUN_DIR/val_examples.png: the evaluator's overlays (image | ground truth | prediction |
errors in red) of the three val images with the lowest mIoU, stacked at half size.
"""

import glob
import json
import os
import sys

import cv2
import numpy as np
import tensorflow as tf

MODES = (("val_single", "single scale"), ("val_msflip", "6 scales + flip"))


def _load(run_dir: str, folder: str) -> dict:
    path = os.path.join(run_dir, folder, "eval.json")
    if not os.path.exists(path):
        raise SystemExit(f"error: {path} is missing: run bench/camvid.sh {run_dir} first")
    with open(path) as f:
        return json.load(f)


def columns(run_dir: str) -> list[tuple[str, dict]]:
    """Returns [(mode name, metrics dict)] for every evaluation mode, CRF off then on."""
    result = []
    for folder, name in MODES:
        refined = _load(run_dir, folder)
        result.append((name, refined["before_crf"]))
        result.append((f"{name} + CRF", refined))
    return result


def training_summary(run_dir: str, train: dict) -> tuple[float, float]:
    """Returns (seconds of the finished train commands in timings.tsv, images/s) for the run's
    `train` config section."""
    seconds = 0.0
    with open(os.path.join(run_dir, "timings.tsv")) as f:
        for line in f:
            name, value = line.split("\t")
            seconds += float(value) if name == "train" else 0.0
    return seconds, train["steps"] * train["batch_size"] / max(seconds, 1e-9)


def logged_training_seconds(run_dir: str, log_every: int, batch_size: int) -> tuple[float, int]:
    """Returns `(seconds, runs)`: the time the trainer spent in the steps it logged, summed over
    every run that wrote an event file into RUN_DIR/train, and how many runs logged steps.

    Each progress line logs `images_per_second` over the steps since the line before (the first
    line of a run: since the `log_every` multiple below it, where a resumed run starts), so a
    line's window took `steps * batch_size / images_per_second` seconds. Unlike timings.tsv, which
    only gets the time of a train command that finished, this counts a run cut short up to its last
    line; steps a resumed run computed again count twice, as they were computed twice.
    """
    seconds, runs = 0.0, 0
    for path in sorted(glob.glob(os.path.join(run_dir, "train", "events.out.tfevents.*"))):
        rates = {}
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "images_per_second":
                    rates[event.step] = float(tf.make_ndarray(value.tensor))
        previous = None
        for step in sorted(rates):
            start = previous if previous is not None else (step - 1) // log_every * log_every
            seconds += (step - start) * batch_size / rates[step]
            previous = step
        runs += bool(rates)
    return seconds, runs


def run_machines(run_dir: str) -> list[str]:
    """Returns the lines of RUN_DIR/provenance.txt (one "machine: ..." line per run of camvid.sh),
    or one line saying that the runs did not record it."""
    try:
        with open(os.path.join(run_dir, "provenance.txt")) as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        lines = []
    return lines or ["machine: not recorded (no provenance.txt: a run of an older bench/camvid.sh)"]


def render(run_dir: str) -> str:
    modes = columns(run_dir)
    class_names = _load(run_dir, "val_single")["class_names"]
    lines = ["| class | " + " | ".join(name for name, _ in modes) + " |", "|---" * (len(modes) + 1) + "|"]
    for index, class_name in enumerate(class_names):
        lines.append(f"| {class_name} | " + " | ".join(f"{100 * m['per_class_iou'][index]:.1f}" for _, m in modes) + " |")
    for key, label in (("miou", "**mIoU**"), ("pixel_accuracy", "pixel accuracy"), ("mean_class_accuracy", "mean class accuracy")):
        lines.append(f"| {label} | " + " | ".join(f"{100 * m[key]:.2f}" for _, m in modes) + " |")
    with open(os.path.join(run_dir, "config.json")) as f:
        train = json.load(f)["train"]
    steps, batch = train["steps"], train["batch_size"]
    seconds, rate = training_summary(run_dir, train)
    logged, runs = logged_training_seconds(run_dir, train["log_every"], batch)
    exported = _load(run_dir, "val_saved_model")
    checkpoint = modes[0][1]
    lines += [
        "",
        f"Training: {steps} steps x batch {batch}, {logged / 60:.1f} min in training steps "
        f"({steps * batch / max(logged, 1e-9):.2f} img/s; from the rates the trainer logged, {runs} run(s)); the train "
        f"commands that finished took {seconds / 60:.1f} min of wall clock ({rate:.2f} img/s, timings.tsv).",
        *run_machines(run_dir),
        f"SavedModel vs checkpoint, val mIoU single scale: {100 * exported['miou']:.4f} vs {100 * checkpoint['miou']:.4f} "
        f"(difference {100 * abs(exported['miou'] - checkpoint['miou']):.4f} points).",
    ]
    return "\n".join(lines) + "\n"


def write_examples(run_dir: str, count: int = 3) -> str:
    """Stacks the first `count` overlays of RUN_DIR/val_single/worst at half size into
    RUN_DIR/val_examples.png; returns its path."""
    folder = os.path.join(run_dir, "val_single", "worst")
    names = sorted(os.listdir(folder))[:count] if os.path.isdir(folder) else []
    if not names:
        raise SystemExit(f"error: no overlays in {folder}: evaluate with --num_visualizations")
    rows = [cv2.imread(os.path.join(folder, name)) for name in names]
    picture = np.concatenate([cv2.resize(r, (r.shape[1] // 2, r.shape[0] // 2), interpolation=cv2.INTER_AREA) for r in rows])
    path = os.path.join(run_dir, "val_examples.png")
    cv2.imwrite(path, picture)
    return path


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: python -m bench.camvid_results RUN_DIR")
    text = render(argv[1])
    with open(os.path.join(argv[1], "results.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"Examples: {write_examples(argv[1])}")


if __name__ == "__main__":
    main(sys.argv)
