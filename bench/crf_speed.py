"""Dense-CRF speed: the TensorFlow backend vs pydensecrf, 10 mean-field iterations.

    python -m bench.crf_speed [--repeats=5] [--threads=0] [--sizes=375x500x21,360x480x11,1024x2048x19]

For each HxWxC a real CamVid val image is resized to HxW (bilinear) and its label (nearest)
gives a blobby unary with C classes (labels taken modulo C). After one warm-up run per backend
(which also traces the tf.function), the backends run alternately --repeats times each so both
see the same machine load; the table gives the median and the TensorFlow / pydensecrf ratio,
plus milliseconds per megapixel to judge linearity. pydensecrf is single-threaded;
--threads sets TensorFlow's intra- and inter-op threads (0 = TensorFlow's default).
"""

import argparse
import os
import sys
import time

import cv2
import numpy as np

from bench import provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inputs(data_dir: str, height: int, width: int, classes: int):
    """Returns (image uint8 [H, W, 3], probabilities float32 [H, W, C]) from CamVid val's first pair."""
    from deeplab_tf.crf.synthetic_unary import blobby_probabilities
    from deeplab_tf.data.camvid_folder import CamVidFolder

    image_path, label_path = CamVidFolder(data_dir).pairs("val")[0]
    image = cv2.resize(cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB), (width, height))
    label = cv2.resize(cv2.imread(label_path, cv2.IMREAD_UNCHANGED), (width, height), interpolation=cv2.INTER_NEAREST)
    return image, blobby_probabilities(label % classes, classes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data", "camvid"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--sizes", default="375x500x21,360x480x11,1024x2048x19")
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from deeplab_tf.crf import DenseCRFParams, refine

    params = DenseCRFParams()
    print("command: python -m bench.crf_speed " + " ".join(sys.argv[1:]))
    print(provenance.describe())
    print(f"TF threads {args.threads or 'default'}, "
          f"load average {os.getloadavg()[0]:.2f}, {params}")
    print("| H x W x C | pydensecrf (ms) | TensorFlow (ms) | TF / pydensecrf | pydensecrf ms/MP | TF ms/MP |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        height, width, classes = (int(v) for v in size.split("x"))
        image, probabilities = inputs(args.data_dir, height, width, classes)
        times = {"pydensecrf": [], "tensorflow": []}
        for repeat in range(args.repeats + 1):
            for backend in times:
                start = time.perf_counter()
                refine(image, probabilities, params, backend=backend)
                if repeat:  # the first round is the warm-up
                    times[backend].append(1000 * (time.perf_counter() - start))
        pd, tf_ms = np.median(times["pydensecrf"]), np.median(times["tensorflow"])
        megapixels = height * width / 1e6
        print(f"| {height} x {width} x {classes} | {pd:.0f} | {tf_ms:.0f} | {tf_ms / pd:.2f} | "
              f"{pd / megapixels:.0f} | {tf_ms / megapixels:.0f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
