"""The training loss's per-pixel cross-entropy, forward + gradient: the exact forms the loss picks
from (`deeplab_tf.training.losses.CROSS_ENTROPY_FORMS`: the one-hot form and TensorFlow's fused
op), alternating in one process.

    python -m bench.cross_entropy [--shapes=8x321x321x11,4x321x321x21] [--repeats=9]

For each `BxHxWxC` shape (float32 logits, random labels in [0, C), random per-pixel weights, as
the masked loss weighs pixels), both compute `sum(cross_entropy * weights)` and its gradient
with respect to the logits in one `tf.function`; they are first checked equal (loss to 1e-6
relative, gradient to 1e-5 of its largest value), then timed interleaved. Printed: median and
min ms of each and the fused op's median over the one-hot form's (the tuner times the same two,
`deeplab_tf.training.losses._form`). Defaults: the CamVid recipe's step (batch 8
of 321x321 crops, 11 classes) and the peers benchmark's (batch 4, 21 classes).
"""

import argparse
import time

import numpy as np

from bench import provenance


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="8x321x321x11,4x321x321x21")
    parser.add_argument("--repeats", type=int, default=9)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print(provenance.describe())
    import tensorflow as tf

    from deeplab_tf.training.losses import CROSS_ENTROPY_FORMS

    def timed(loss_fn):
        @tf.function
        def run(labels, logits, weights):
            with tf.GradientTape() as tape:
                tape.watch(logits)
                loss = tf.reduce_sum(loss_fn(labels, logits) * weights)
            return loss, tape.gradient(loss, logits)
        return run

    runs = {"fused op": timed(CROSS_ENTROPY_FORMS["fused"]), "one-hot form": timed(CROSS_ENTROPY_FORMS["one_hot"])}
    rng = np.random.default_rng(0)
    print("| logits | fused op median ms (min) | one-hot form median ms (min) | fused / one-hot |")
    print("|---|---|---|---|")
    for text in args.shapes.split(","):
        shape = tuple(int(size) for size in text.split("x"))
        logits = tf.constant(rng.normal(0, 3, shape), tf.float32)
        labels = tf.constant(rng.integers(0, shape[-1], shape[:3]), tf.int32)
        weights = tf.constant(rng.random(shape[:3]), tf.float32)
        (loss_a, grad_a), (loss_b, grad_b) = (run(labels, logits, weights) for run in runs.values())
        if (abs(float(loss_a) - float(loss_b)) > 1e-6 * abs(float(loss_a))
                or float(tf.reduce_max(tf.abs(grad_a - grad_b))) > 1e-5 * float(tf.reduce_max(tf.abs(grad_a)))):
            raise SystemExit(f"{text}: the two losses differ")
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                loss, grad = run(labels, logits, weights)
                grad.numpy()
                times[name].append(time.perf_counter() - start)
        (fused_ms, ours_ms) = (np.median(t) * 1e3 for t in times.values())
        mins = [min(t) * 1e3 for t in times.values()]
        print(f"| {text} | {fused_ms:.1f} ({mins[0]:.1f}) | {ours_ms:.1f} ({mins[1]:.1f}) | {fused_ms / ours_ms:.2f}x |")


if __name__ == "__main__":
    main()
