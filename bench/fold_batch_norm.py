"""Inference latency with batch norm folded into the convolutions (what export does) vs not.

    nice -n 19 python -m bench.fold_batch_norm [--model=resnet50_v3] [--size=513] [--batch=1]
        [--rounds=10] [--warmup=2]

Builds the model with random weights and random, non-trivial batch norm statistics, folds it with
`deeplab_tf.models.fold_batch_norm.fold_batch_norm`, checks that the folded logits equal the unfolded
inference logits (1e-4 relative), then times one forward pass of each as a `tf.function` on the
same input (the graph a SavedModel serves), alternating in one process (A B, B A, A B, ...: each
goes first in half the rounds) so that a busy machine slows both alike. Prints min / median /
max wall seconds and process CPU seconds (all threads; less sensitive to other processes
taking the cores) of each, and the ratios of medians (unfolded / folded: > 1 means folding is
faster).
"""

import argparse
import statistics
import time

import numpy as np

from bench import provenance


MODELS = {
    "resnet50_v3": dict(arch="deeplab_v3", backbone="resnet50", output_stride=16, multi_grid=(1, 2, 4)),
    "mobilenet_v2_v3plus": dict(arch="deeplab_v3_plus", backbone="mobilenet_v2", output_stride=16),
    "xception65_v3plus": dict(arch="deeplab_v3_plus", backbone="xception65", output_stride=16, separable=True),
}


def randomize_batch_norms(model, keras, seed=0):
    """Random gamma, beta, moving mean and variance in every BatchNormalization."""
    rng = np.random.default_rng(seed)
    draw = {"gamma": lambda s: rng.uniform(0.5, 1.5, s), "beta": lambda s: rng.normal(0, 0.1, s),
            "moving_mean": lambda s: rng.normal(0, 0.1, s), "moving_variance": lambda s: rng.uniform(0.5, 1.5, s)}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            for weight in layer.weights:
                weight.assign(draw[weight.path.split("/")[-1]](weight.shape).astype("float32"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50_v3", choices=sorted(MODELS))
    parser.add_argument("--size", type=int, default=513)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--control", action="store_true",
                        help="also time an unfolded copy made the same way (clone + copied weights)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from deeplab_tf.config import ModelConfig
    from deeplab_tf.models.fold_batch_norm import count_batch_norms, fold_batch_norm
    from deeplab_tf.models import build_model

    model = build_model(ModelConfig(**MODELS[args.model]), num_classes=21).model
    randomize_batch_norms(model, keras)
    folded = fold_batch_norm(model, log=print)
    print(f"{args.model}: {count_batch_norms(model)} batch norms, {count_batch_norms(folded)} left after folding")
    images = tf.constant(np.random.default_rng(1).normal(size=(args.batch, args.size, args.size, 3)), tf.float32)
    variants = [("unfolded", model), ("folded", folded)]
    if args.control:  # same process, same construction path, no folding
        copy = keras.models.clone_model(model, recursive=True)
        copy.set_weights(model.get_weights())
        variants.append(("copy", copy))
    runs = {name: tf.function(lambda x, m=m: m(x, training=False)) for name, m in variants}
    reference, got = (runs[name](images).numpy() for name in ("unfolded", "folded"))
    error = np.abs(got - reference).max() / np.abs(reference).max()
    print(f"max |folded - unfolded| / max |unfolded| = {error:.2e}")
    assert error <= 1e-4, error
    wall, cpu = ({name: [] for name in runs} for _ in range(2))
    order = list(runs)
    for round_index in range(args.warmup + args.rounds):
        for name in order if round_index % 2 == 0 else order[::-1]:
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name](images).numpy()
            if round_index >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    print(f"{args.model} {args.size}x{args.size} batch {args.batch}, {args.rounds} rounds alternating; "
          f"{provenance.describe()}")
    for label, times in (("wall", wall), ("cpu", cpu)):
        for name, values in times.items():
            print(f"  {label:4s} {name:9s} min {min(values):.3f} s  median {statistics.median(values):.3f} s  "
                  f"max {max(values):.3f} s")
        for name in list(times)[1:]:
            ratio = statistics.median(times["unfolded"]) / statistics.median(times[name])
            print(f"  {label:4s} ratio of medians unfolded / {name} = {ratio:.3f}")


if __name__ == "__main__":
    main()
