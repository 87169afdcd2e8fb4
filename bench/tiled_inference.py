"""Tiled vs whole-image inference of a 1024x2048 image at output stride 8: peak memory and agreement.

    python -m bench.tiled_inference [--models=v2_largefov,v3plus] [--output_stride=8] [--tile=513] \
        [--overlap=128] [--unaligned] [--size=1024,2048]

Models (random weights, seed 0; the memory and the seams do not depend on training), built at
--output_stride with `deeplab_tf.assembly.assemble` from the `demo` experiment's MobileNetV2-0.35:
- `v2_largefov`: DeepLab v2 LargeFOV head (one 3x3 classifier at rate 12 on the output-stride-8
  features, logits upsampled bilinearly), no image pooling: every output pixel sees a bounded
  neighbourhood (its receptive field), like DeepLab v2's heads (its Cityscapes model, ResNet-101
  ASPP, is evaluated in overlapping windows).
- `v3plus`: the `demo` model itself, DeepLabv3+ whose ASPP has an image-pooling branch.

A freshly initialised network's activations fade through the backbone (every pixel gets the same
class), so the parent first sets each BatchNormalization layer's moving statistics from one
training-mode pass (momentum 0) over a batch of 8 random 256x256 crops of the image (a batch, so
that the image-pooling branch's BatchNormalization sees more than one pooled vector) and saves the
weights, which the children load: a well-conditioned random network whose labels vary across the
image, and the children's memory holds inference only.

For each model, one child process predicts a random-texture image whole, another with
`deeplab_tf.evaluation.inference.tiled` (--tile square windows rounded down to a multiple of the output
stride, i.e. 512, starting at multiples of it, at least --overlap pixels overlapping,
probabilities averaged where windows overlap); each reports its peak resident memory (VmHWM)
after the model was built and after prediction. The whole-image child also measures the
receptive-field radius: the largest distance from an output-stride block of output pixels to an
input pixel with a non-zero gradient, on a square crop ("global" when that reaches the crop's
border). With --unaligned a third child tiles with stride 1 (513 windows, 385-pixel steps), as
`tiled` did before windows were put on the output-stride grid.

The parent prints a table: label agreement of tiled vs whole over all pixels, within the seam
bands (pixels less than overlap/2 from an edge inside the image of a window covering them; the
overlaps are in these bands), farther than overlap/2, and at least the receptive-field radius
away (where the tiled probabilities must equal the whole-image ones: the largest difference
there is printed), with the share of pixels in each region.

Why v3plus differs away from the seams: its image-pooling branch averages the features of the
whole input, and that average is broadcast to every pixel, so its receptive field is the whole
input. A window pools its own 512x512 region, the whole image pools 1024x2048; every pixel of
the window gets another global context than in whole-image inference, however far it is from a
seam. This is a property of the architecture, not of tiling: any tiled or cropped evaluation of
a model with image pooling changes its output everywhere (DeepLabv3+'s reference
implementation evaluates Cityscapes on whole images). v2_largefov agrees exactly beyond its
receptive-field radius; between overlap/2 and that radius the window's zero padding still
reaches the pixel. The random network's effective receptive field is close to its theoretical
one; trained weights usually concentrate it nearer the pixel, so they may agree more between
overlap/2 and the radius (not measured here).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

from bench import provenance

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # children: python -m bench.tiled_inference

MODELS = {  # name -> (experiment, overrides)
    "v2_largefov": ("demo", "model.arch=deeplab_v2,model.head=classifier,model.atrous_rates=(12,)"),
    "v3plus": ("demo", ""),
}
CALIBRATION = (8, 256)  # crops, side


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own address space (VmHWM), in MB. Unlike
    ru_maxrss, it does not start from the parent's resident memory at fork."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def texture(size) -> np.ndarray:
    """A smooth random uint8 image [1, height, width, 3]."""
    import cv2

    noise = np.random.default_rng(0).integers(0, 256, size=(size[0] // 16, size[1] // 16, 3), dtype=np.uint8)
    return cv2.resize(noise, size[::-1], interpolation=cv2.INTER_CUBIC)[None]


def build(name: str, output_stride: int):
    """Returns `deeplab_tf.assembly.assemble`'s parts for the model `name` of MODELS."""
    import keras

    from deeplab_tf.assembly import assemble
    from deeplab_tf.config import apply_overrides
    from experiments import get_experiment

    experiment, overrides = MODELS[name]
    keras.utils.set_random_seed(0)
    return assemble(apply_overrides(get_experiment(experiment), overrides), output_stride=output_stride)


def calibrated_weights(name: str, output_stride: int, image, path: str) -> None:
    """Builds the model `name`, calibrates its BatchNormalization statistics on random crops of
    `image` and saves its weights to `path`."""
    import keras

    parts = build(name, output_stride)
    count, side = CALIBRATION
    rng = np.random.default_rng(0)
    tops = rng.integers(0, image.shape[1] - side + 1, count)
    lefts = rng.integers(0, image.shape[2] - side + 1, count)
    crops = np.stack([image[0, top:top + side, left:left + side] for top, left in zip(tops, lefts)])
    calibrate_batch_norm(parts.model, parts.normalize, crops)
    np.savez(path, *parts.model.get_weights())
    keras.backend.clear_session()


def calibrate_batch_norm(model, normalize, pixels) -> None:
    """Sets the moving statistics of every BatchNormalization layer of `model` to the batch
    statistics of `pixels`, in one training-mode pass with momentum 0."""
    import keras
    import tensorflow as tf

    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = 0.0
    model(normalize(tf.cast(pixels, tf.float32)), training=True)


def receptive_radius(model, normalize, image, block: int):
    """Returns the largest distance (pixels, along rows or columns) from a `block` x `block`
    square of output pixels at the centre of a square crop of `image` to an input pixel their
    logits depend on (non-zero gradient), or None when that reaches the crop's border."""
    import tensorflow as tf

    side = min(image.shape[1:3])
    inputs = normalize(tf.cast(image[:, :side, :side], tf.float32))
    centre = side // 2 // block * block
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        logits = model(inputs, training=False)
        total = tf.reduce_sum(logits[:, centre:centre + block, centre:centre + block])
    rows, cols = np.nonzero(np.abs(tape.gradient(total, inputs).numpy()[0]).sum(-1) > 0)
    if min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) == side - 1:
        return None
    last = centre + block - 1
    return int(max(centre - rows.min(), rows.max() - last, centre - cols.min(), cols.max() - last))


def child(args) -> None:
    """Predicts the image whole or tiled; saves the probabilities and a JSON of measurements."""
    import time

    from deeplab_tf.evaluation.inference import keras_scorer, tiled

    parts = build(args.model, args.output_stride)
    with np.load(args.weights) as saved:
        parts.model.set_weights([saved[f"arr_{index}"] for index in range(len(saved.files))])
    image = texture(args.size)
    scorer = keras_scorer(parts.model, parts.normalize)
    if args.mode != "whole":
        scorer = tiled(scorer, (args.tile, args.tile), args.overlap, stride=args.stride)
    built = peak_rss_mb()
    start = time.perf_counter()
    probabilities = np.asarray(scorer(image))[0]
    seconds = time.perf_counter() - start
    result = {"rss_built": built, "rss_peak": peak_rss_mb(), "seconds": seconds}
    np.save(args.output + ".npy", probabilities)
    print(f"{args.model} {args.mode}: peak RSS {result['rss_peak']:.0f} MB (model built: {built:.0f} MB), "
          f"{seconds:.1f}s", flush=True)
    if args.mode == "whole":
        result["radius"] = receptive_radius(parts.model, parts.normalize, image, args.output_stride)
    with open(args.output + ".json", "w") as file:
        json.dump(result, file)


def compare(whole, tiled_scores, distance, radius, overlap) -> dict:
    same = np.argmax(whole, -1) == np.argmax(tiled_scores, -1)
    difference = np.abs(whole - tiled_scores).max(axis=-1)
    regions = {"all": np.ones_like(same), "seam": distance < overlap / 2, "far": distance >= overlap / 2}
    if radius is not None:
        regions["beyond_rf"] = distance >= radius
    row = {name: (float(same[mask].mean()) if mask.any() else float("nan"), float(mask.mean()))
           for name, mask in regions.items()}
    row["max_difference_beyond_rf"] = float(difference[regions["beyond_rf"]].max()) if "beyond_rf" in regions else None
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"Comma-separated names from {sorted(MODELS)}.")
    parser.add_argument("--output_stride", type=int, default=8)
    parser.add_argument("--tile", type=int, default=513)
    parser.add_argument("--overlap", type=int, default=128)
    parser.add_argument("--unaligned", action="store_true", help="Also tile with stride 1 (windows off the grid).")
    parser.add_argument("--size", default="1024,2048", help="Image height,width.")
    parser.add_argument("--mode", choices=["whole", "tiled", "unaligned"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    args = parser.parse_args()
    print(provenance.describe())
    args.size = tuple(int(side) for side in args.size.split(","))
    if args.mode:
        return child(args)
    names = args.models.split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {sorted(MODELS)}")
    modes = {"whole": args.output_stride, "tiled": args.output_stride}
    if args.unaligned:
        modes["unaligned"] = 1
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            results, scores = {}, {}
            weights = os.path.join(folder, f"{name}_weights.npz")
            calibrated_weights(name, args.output_stride, texture(args.size), weights)
            for mode, stride in modes.items():
                output = os.path.join(folder, f"{name}_{mode}")
                subprocess.run([sys.executable, "-m", "bench.tiled_inference", f"--mode={mode}", f"--model={name}",
                                f"--stride={stride}", f"--output={output}", f"--weights={weights}",
                                f"--output_stride={args.output_stride}", f"--tile={args.tile}",
                                f"--overlap={args.overlap}", f"--size={args.size[0]},{args.size[1]}"],
                               check=True, cwd=REPO)
                with open(output + ".json") as file:
                    results[mode] = json.load(file)
                scores[mode] = np.load(output + ".npy")
            radius = results["whole"]["radius"]
            classes = np.bincount(np.argmax(scores["whole"], -1).ravel(), minlength=scores["whole"].shape[-1])
            print(f"{name}: whole-image label shares {np.round(classes / classes.sum(), 3).tolist()}, "
                  f"receptive-field radius {radius if radius is not None else 'global'}")
            for mode, stride in modes.items():
                if mode == "whole":
                    continue
                from deeplab_tf.evaluation.inference import distance_to_seams  # TensorFlow only once the children ran

                distance = distance_to_seams(args.size, (args.tile, args.tile), args.overlap, stride)
                rows.append((name, mode, radius, results["whole"], results[mode],
                             compare(scores["whole"], scores[mode], distance, radius, args.overlap)))
    half = args.overlap // 2
    print(f"\n{args.size[0]}x{args.size[1]} image, output stride {args.output_stride}, tile {args.tile} "
          f"(windows {args.tile // args.output_stride * args.output_stride} on the stride grid; "
          f"unaligned: {args.tile}, stride 1), overlap {args.overlap}; agreement (share of pixels)\n")
    print(f"| model | tiling | RF radius | peak RSS whole / tiled | time whole / tiled | all pixels "
          f"| seam bands (< {half} px) | > {half} px from seams | >= RF radius from seams | max abs dp >= RF radius |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, mode, radius, whole, tiled_result, row in rows:
        cell = lambda key: f"{row[key][0]:.4f} ({row[key][1]:.0%})" if key in row else "n/a (global)"
        maximum = row["max_difference_beyond_rf"]
        print(f"| {name} | {'stride grid' if mode == 'tiled' else 'unaligned'} | "
              f"{radius if radius is not None else 'global'} | "
              f"{whole['rss_peak']:.0f} / {tiled_result['rss_peak']:.0f} MB | "
              f"{whole['seconds']:.0f} / {tiled_result['seconds']:.0f} s | {cell('all')} | {cell('seam')} | {cell('far')} | "
              f"{cell('beyond_rf')} | {f'{maximum:.1e}' if maximum is not None else 'n/a'} |")


if __name__ == "__main__":
    main()
