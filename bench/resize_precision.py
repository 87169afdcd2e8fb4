"""Bilinear resize of a bfloat16 map: resized as bfloat16 against cast to float32 first.

    python -m bench.resize_precision [--rounds=30]

`deeplab_tf.layers.resize` casts bfloat16 / float16 maps to float32 before resizing (exact:
TensorFlow's bilinear resize computes and returns float32 either way), so that a mixed-precision
step compiles under XLA. This times what that costs without XLA, at the resizes of the peers'
ResNet-50 step and the CamVid MobileNetV2 step: for each shape, the forward pass (inference) and
the forward pass + the gradient with respect to the map (training) of
`cast(tf.image.resize(x), bfloat16)` with `x` bfloat16, and with `x` cast to float32 first, as two
`tf.function`s alternating for --rounds rounds after two warm-up calls. Printed: the median ms of
each and their ratio (float32 first / bfloat16).
"""

import argparse
import time

import numpy as np

from bench import provenance

# (map shape, output size): the logits of the peers' training step (OS 16, 321 crop) and served
# step (513), ASPP's image pooling, and the CamVid v3+ step's logits (stride 4) and decoder upsampling.
CASES = [((4, 21, 21, 21), (321, 321)), ((4, 1, 1, 256), (21, 21)), ((8, 81, 81, 11), (321, 321)),
         ((8, 21, 21, 256), (81, 81)), ((1, 33, 33, 21), (513, 513))]


def run(cast, shape, size, training):
    """Returns a `tf.function` of no arguments: the resize of a random bfloat16 map of `shape` to
    `size`, cast to float32 first when `cast`, with the map's gradient when `training`."""
    import tensorflow as tf

    x = tf.cast(tf.random.stateless_normal(shape, seed=[0, 0]), tf.bfloat16)

    def resize(x):
        return tf.cast(tf.image.resize(tf.cast(x, tf.float32) if cast else x, size), tf.bfloat16)

    @tf.function
    def step():
        if not training:
            return resize(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(resize(x), tf.float32))
        return tape.gradient(loss, x)

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    print(provenance.describe())
    for training in (True, False):
        for shape, size in CASES:
            steps = {name: run(name == "float32", shape, size, training) for name in ("bfloat16", "float32")}
            for step in steps.values():
                step(), step()
            times = {name: [] for name in steps}
            for _ in range(args.rounds):
                for name, step in steps.items():
                    start = time.perf_counter()
                    step().numpy()
                    times[name].append(time.perf_counter() - start)
            ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
            print(f"{'training' if training else 'inference'} {'x'.join(map(str, shape))} -> "
                  f"{size[0]}x{size[1]}: bfloat16 {ms['bfloat16']:.3f} ms, float32 first {ms['float32']:.3f} ms "
                  f"({ms['float32'] / ms['bfloat16']:.2f}x)")


if __name__ == "__main__":
    main()
