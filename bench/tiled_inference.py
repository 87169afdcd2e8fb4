"""Tiled vs whole-image inference of a 1024x2048 image: peak memory and agreement.

    python bench/tiled_inference.py [--experiment=demo] [--override=model.arch=deeplab_v2,...] \
        [--output_stride=8] [--tile=513] [--overlap=128]

The experiment's model (random weights, seed 0; the memory and the seams do not depend on
training) is built at --output_stride with `deeplab_tf.assembly.assemble`. One child process
predicts a random-texture 1024x2048 image whole, another with `deeplab_tf.inference.tiled`
(--tile square windows, --overlap pixels), each reporting its peak resident memory (ru_maxrss)
after the model was built and after prediction. The parent prints both, the label agreement and
the largest probability difference of the two predictions, over all pixels and away from the
window seams (more than --seam pixels from a window edge inside the image).

DeepLabv3/v3+ pool the whole input in ASPP, so a window sees another global context than the whole
image and predictions differ away from the seams too; a model without image pooling (v2) differs
only near the seams (see tests/test_inference.py for the exact statement on a small model).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SIZE = (1024, 2048)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    """Predicts the image whole or tiled; saves the probabilities and prints the peak RSS."""
    import time

    import cv2
    import keras

    from deeplab_tf.assembly import assemble
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.inference import keras_scorer, tiled
    from experiments import get_experiment

    keras.utils.set_random_seed(0)
    parts = assemble(apply_overrides(get_experiment(args.experiment), args.override), output_stride=args.output_stride)
    scorer = keras_scorer(parts.model, parts.normalize)
    if args.mode == "tiled":
        scorer = tiled(scorer, (args.tile, args.tile), args.overlap)
    noise = np.random.default_rng(0).integers(0, 256, size=(SIZE[0] // 16, SIZE[1] // 16, 3), dtype=np.uint8)
    image = cv2.resize(noise, SIZE[::-1], interpolation=cv2.INTER_CUBIC)[None]  # smooth random texture
    built = peak_rss_mb()
    start = time.perf_counter()
    probabilities = np.asarray(scorer(image))[0]
    seconds = time.perf_counter() - start
    np.save(args.output, probabilities)
    print(f"{args.mode}: peak RSS {peak_rss_mb():.0f} MB (model built: {built:.0f} MB), {seconds:.1f}s")


def seam_mask(tile: int, overlap: int, seam: int) -> np.ndarray:
    from deeplab_tf.inference import window_starts

    mask = np.zeros(SIZE, bool)
    for axis, length in enumerate(SIZE):
        for start in window_starts(length, tile, overlap):
            for edge in (start, start + tile):
                if 0 < edge < length:
                    index = [slice(None), slice(None)]
                    index[axis] = slice(max(edge - seam, 0), edge + seam)
                    mask[tuple(index)] = True
    return mask


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--override", default="", help="Experiment overrides, section.field=value,...")
    parser.add_argument("--output_stride", type=int, default=8)
    parser.add_argument("--tile", type=int, default=513)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--seam", type=int, default=64, help="Pixels around a window edge counted as seam.")
    parser.add_argument("--mode", choices=["whole", "tiled"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return child(args)
    scores = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("whole", "tiled"):
            output = os.path.join(folder, f"{mode}.npy")
            subprocess.run([sys.executable, __file__, f"--mode={mode}", f"--output={output}",
                            *[f"--{k}={v}" for k, v in vars(args).items() if k not in ("mode", "output")]], check=True)
            scores[mode] = np.load(output)
    same = np.argmax(scores["whole"], -1) == np.argmax(scores["tiled"], -1)
    difference = np.abs(scores["whole"] - scores["tiled"]).max(axis=-1)
    seams = seam_mask(args.tile, args.overlap, args.seam)
    print(f"classes predicted (whole image): {np.unique(np.argmax(scores['whole'], -1)).tolist()}")
    print(f"max |probability difference|: {difference[~seams].max():.2e} away from seams, "
          f"{difference[seams].max():.2e} within {args.seam} px of a seam")
    print(f"agreement: {same.mean():.4f} of all pixels, {same[~seams].mean():.4f} away from seams "
          f"({(~seams).mean():.2%} of pixels), {same[seams].mean():.4f} within {args.seam} px of a seam")


if __name__ == "__main__":
    main()
