"""Two exports of one model side by side (e.g. --precision=float32 and bfloat16): label agreement
and serving latency, on the same images in one run.

    python -m bench.precision_parity --reference=/tmp/camvid_float32 --candidate=/tmp/camvid_bfloat16 \
        --images=../shared/data/camvid/val.txt [--repeats=1]
    python -m bench.precision_parity --reference=/tmp/voc_float32 --candidate=/tmp/voc_bfloat16 \
        --images=IMAGE.bmp,IMAGE2.bmp --masks=MASK.bmp,MASK2.bmp

--images is a list file of "image [mask]" lines relative to its folder (CamVid's val.txt), or
image files with their --masks in the same order (VOC-style palette images: the class index per
pixel). Each image (read with PIL as RGB uint8) goes to both exports' `serving_image_tensor`
signature, one image per call, in alternation (reference, candidate, reference, ...; one warm-up
call each first), so both see the same machine load. Prints per image and in total: the share of
pixels whose labels agree, with masks each export's pixel accuracy over the pixels labelled with
a class (mask value < the number of classes in the export's dataset_info.json), and the median
and total seconds per call of each export. Uses only TensorFlow, NumPy and PIL, as a serving
client would (the project is not imported).
"""

import argparse
import json
import os
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from bench import provenance


def read_pairs(images: str, masks: str) -> list[tuple[str, str | None]]:
    """Returns [(image path, mask path or None)] from the --images / --masks values."""
    if images.endswith(".txt"):
        root = os.path.dirname(os.path.abspath(images))
        with open(images) as f:
            lines = [line.split() for line in f.read().splitlines() if line.strip()]
        return [(os.path.join(root, parts[0]), os.path.join(root, parts[1]) if len(parts) > 1 else None)
                for parts in lines]
    files, mask_files = images.split(","), masks.split(",") if masks else []
    if mask_files and len(mask_files) != len(files):
        raise SystemExit(f"--masks has {len(mask_files)} files for {len(files)} --images")
    return list(zip(files, mask_files or [None] * len(files)))


def load(export_dir: str):
    """Returns (call(image uint8 [H,W,3]) -> labels [H,W], number of classes) of an export."""
    signature = tf.saved_model.load(export_dir).signatures["serving_image_tensor"]
    with open(os.path.join(export_dir, "assets.extra", "dataset_info.json")) as f:
        info = json.load(f)
    return (lambda image: signature(images=tf.constant(image[None]))["labels"][0].numpy()), len(info["class_names"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", required=True, help="Export compared against (e.g. float32).")
    parser.add_argument("--candidate", required=True, help="Export compared (e.g. bfloat16).")
    parser.add_argument("--images", required=True, help="A list file (image [mask] per line) or comma-separated images.")
    parser.add_argument("--masks", default="", help="Comma-separated masks of the --images files, in order.")
    parser.add_argument("--repeats", type=int, default=1, help="Timed calls per image and export.")
    args = parser.parse_args()
    print(provenance.describe())

    pairs = read_pairs(args.images, args.masks)
    (reference, classes), (candidate, _) = load(args.reference), load(args.candidate)
    first = np.asarray(Image.open(pairs[0][0]).convert("RGB"))
    reference(first), candidate(first)  # warm-up: tracing and first-call allocations
    times = {"reference": [], "candidate": []}
    agree = total = 0
    correct = {"reference": 0, "candidate": 0}
    labelled = 0
    for image_path, mask_path in pairs:
        image = np.asarray(Image.open(image_path).convert("RGB"))
        labels = {}
        for _ in range(args.repeats):
            for name, call in (("reference", reference), ("candidate", candidate)):
                start = time.perf_counter()
                labels[name] = call(image)
                times[name].append(time.perf_counter() - start)
        same = int((labels["reference"] == labels["candidate"]).sum())
        agree, total = agree + same, total + labels["reference"].size
        line = f"{os.path.basename(image_path)}: labels agree on {same / labels['reference'].size:.4%}"
        if mask_path:
            mask = np.asarray(Image.open(mask_path))
            valid = mask < classes
            labelled += int(valid.sum())
            for name in correct:
                hits = int((labels[name][valid] == mask[valid]).sum())
                correct[name] += hits
                line += f", {name} vs mask {hits / max(valid.sum(), 1):.4%}"
        print(line)
    print(f"images {len(pairs)}: labels agree on {agree / total:.4%} of {total} pixels")
    if labelled:
        print("pixel accuracy vs masks: " + ", ".join(f"{name} {correct[name] / labelled:.4%}" for name in correct)
              + f" ({labelled} labelled pixels)")
    for name, export_dir in (("reference", args.reference), ("candidate", args.candidate)):
        print(f"{name} {export_dir}: median {np.median(times[name]) * 1000:.1f} ms, total "
              f"{sum(times[name]):.2f} s over {len(times[name])} calls")


if __name__ == "__main__":
    main()
