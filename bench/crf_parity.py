"""Dense CRF on real CamVid images: TensorFlow backend vs pydensecrf, and the CRF's effect.

    python -m bench.crf_parity [--data_dir=../shared/data/camvid] [--num_images=20]
    python -m bench.crf_parity --effect [--search_images=30] [--processes=2]

The unary is `blobby_probabilities` of the ground truth (an output-stride-8-like score map:
one-hot labels downsampled 8x, blurred, noised, upsampled, softmax at temperature 0.2; its own
pixel accuracy is printed and should be 80-90%).

Parity (default): the first --num_images val images through both backends with the default
DeepLab parameters. Passes when the arg-max labels agree on >= 99% of pixels and the mIoU gain
over the unary differs by <= 0.3 points.

Effect (--effect): the coarse-to-fine parameter search (`deeplab_tf.evaluation.crf_search`) on the first
--search_images *train* images (held out from val), written to --save_params, then mIoU on all
val images without CRF, with the default parameters and with the searched ones, on both
backends. --params=FILE skips the search and uses a file written by an earlier run.
"""

import argparse
import os
import sys
import time

import cv2
import numpy as np

from deeplab_tf.crf import DenseCRFParams, load_params, refine, refine_many, save_params
from deeplab_tf.crf.synthetic_unary import blobby_probabilities
from deeplab_tf.data.camvid_folder import CAMVID_VOID, CamVidFolder
from deeplab_tf.evaluation.crf_search import search_crf_params
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 11


def load_camvid(data_dir: str, split: str, count: int) -> list:
    """Returns up to `count` (image uint8 [H, W, 3] RGB, label uint8 [H, W], 255 = void) pairs,
    each with its blobby unary float32 [H, W, 11] (noise seeded by the pair's index)."""
    examples = []
    for index, (image_path, label_path) in enumerate(CamVidFolder(data_dir).pairs(split)[:count]):
        image = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
        label = cv2.imread(label_path, cv2.IMREAD_UNCHANGED)
        label[label == CAMVID_VOID] = 255
        examples.append((image, label, blobby_probabilities(label, NUM_CLASSES, seed=index)))
    return examples


def miou(examples, predictions) -> float:
    confusion = sum(confusion_matrix(label, p, NUM_CLASSES) for (_, label, _), p in zip(examples, predictions))
    return segmentation_metrics(confusion)["miou"]


def accuracy(examples, predictions) -> float:
    confusion = sum(confusion_matrix(label, p, NUM_CLASSES) for (_, label, _), p in zip(examples, predictions))
    return segmentation_metrics(confusion)["pixel_accuracy"]


def run_both(examples, params, processes):
    """Returns (TensorFlow, pydensecrf) refined probabilities of every example and the seconds
    each backend took."""
    start = time.perf_counter()
    tf_refined = [refine(image, unary, params) for image, _, unary in examples]
    tf_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pd_refined = refine_many([e[0] for e in examples], [e[2] for e in examples], params, processes=processes)
    return tf_refined, pd_refined, tf_seconds, time.perf_counter() - start


def parity(args):
    examples = load_camvid(args.data_dir, "val", args.num_images)
    params = DenseCRFParams()
    unary_labels = [unary.argmax(-1) for _, _, unary in examples]
    tf_refined, pd_refined, tf_seconds, pd_seconds = run_both(examples, params, args.processes)
    tf_labels, pd_labels = [r.argmax(-1) for r in tf_refined], [r.argmax(-1) for r in pd_refined]
    differ = sum(int(np.sum(a != b)) for a, b in zip(tf_labels, pd_labels))
    agree = 1.0 - differ / sum(a.size for a in tf_labels)
    largest = max(float(np.abs(a - b).max()) for a, b in zip(tf_refined, pd_refined))
    base, gain_tf, gain_pd = miou(examples, unary_labels), miou(examples, tf_labels), miou(examples, pd_labels)
    gap = abs((gain_tf - base) - (gain_pd - base)) * 100
    print(f"{len(examples)} CamVid val images {examples[0][0].shape[:2]}, {params}")
    print(f"unary pixel accuracy {accuracy(examples, unary_labels):.4f} (target 0.80-0.90)")
    print("| | mIoU | gain over unary (points) |\n|---|---|---|")
    print(f"| unary | {base:.4f} | |")
    print(f"| CRF, pydensecrf | {gain_pd:.4f} | {100 * (gain_pd - base):+.2f} |")
    print(f"| CRF, TensorFlow | {gain_tf:.4f} | {100 * (gain_tf - base):+.2f} |")
    print(f"label agreement TensorFlow vs pydensecrf: {100 * agree:.4f}% of pixels, {differ} pixels differ "
          f"(need >= 99%); largest probability difference {largest:.2e}")
    print(f"mIoU-gain difference: {gap:.3f} points (need <= 0.3)")
    print(f"time: TensorFlow {tf_seconds:.1f}s (1 process), pydensecrf {pd_seconds:.1f}s ({args.processes} processes)")
    print("PASS" if agree >= 0.99 and gap <= 0.3 else "FAIL")
    return 0 if agree >= 0.99 and gap <= 0.3 else 1


def effect(args):
    if args.params:
        searched = load_params(args.params)
        print(f"searched parameters from {args.params}: {searched}")
    else:
        held_out = load_camvid(args.data_dir, "train", args.search_images)
        result = search_crf_params(*zip(*[(i, u, lb) for i, lb, u in held_out]), NUM_CLASSES, processes=args.processes)
        searched = result.best
        print(f"search on {len(held_out)} train images: unary mIoU {result.unary_miou:.4f}, best {result.best_miou:.4f} "
              f"with {result.best} ({len(result.trials)} settings)")
        if args.save_params:
            save_params(searched, args.save_params, miou=result.best_miou, unary_miou=result.unary_miou)
            print(f"wrote {args.save_params}")
    examples = load_camvid(args.data_dir, "val", 10**6)
    unary_labels = [unary.argmax(-1) for _, _, unary in examples]
    print(f"\n{len(examples)} CamVid val images, unary pixel accuracy {accuracy(examples, unary_labels):.4f}")
    print("| | mIoU (val) | pixel accuracy |\n|---|---|---|")
    print(f"| unary (no CRF) | {miou(examples, unary_labels):.4f} | {accuracy(examples, unary_labels):.4f} |")
    for name, params in (("DeepLab defaults", DenseCRFParams()), ("searched", searched)):
        for backend, refined in zip(("TensorFlow", "pydensecrf"), run_both(examples, params, args.processes)[:2]):
            labels = [r.argmax(-1) for r in refined]
            print(f"| CRF {name}, {backend} | {miou(examples, labels):.4f} | {accuracy(examples, labels):.4f} |")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    parser.add_argument("--num_images", type=int, default=20)
    parser.add_argument("--effect", action="store_true")
    parser.add_argument("--search_images", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--save_params", default="", help="--effect: write the search result to this JSON file")
    parser.add_argument("--params", default="", help="--effect: skip the search, use this crf_params.json")
    args = parser.parse_args()
    print("command: python -m bench.crf_parity " + " ".join(sys.argv[1:]))
    return effect(args) if args.effect else parity(args)


if __name__ == "__main__":
    sys.exit(main())
