"""Training-step cost of a 3x3 atrous convolution per rate and implementation.

    python -m bench.atrous_train_step [--shapes=8x22x30x320,4x33x33x2048,4x65x65x2048]
        [--rates=1,2,6,12,18,24] [--implementations=native,space_to_batch,shifted_gemm,auto]
        [--repeats=5] [--heavy_repeats=2] [--heavy_skip=space_to_batch] [--kind=conv]
        [--filters=256] [--jit]

For each NxHxWxC input and each (implementation, rate) a `tf.function` computes the forward
pass (3x3, "same", `--filters` outputs, or a depthwise 3x3 with `--kind=depthwise`) and both
gradients (input and kernel) of `sum(y * g)` for a fixed random `g`. Every function runs once
to trace and warm up; then the repeats run interleaved (each repeat visits every function, in
a fresh shuffled order) so that all see the same machine load. The table gives min / median /
max milliseconds and the median over the median of `native` at rate 1 on the same shape.
Shapes with more than 20M input values (`4x65x65x2048`) are heavy: they run `--heavy_repeats`
repeats and skip `--heavy_skip` (the slow `space_to_batch`) to keep the run near 10 minutes
on 2 CPU cores. For `auto`, the implementation it picked is given in brackets.
"""

import argparse
import os
import random
import sys
import time

import numpy as np

from bench import provenance


HEAVY = 20_000_000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="8x22x30x320,4x33x33x2048,4x65x65x2048")
    parser.add_argument("--rates", default="1,2,6,12,18,24")
    parser.add_argument("--implementations", default="native,space_to_batch,shifted_gemm,auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--heavy_repeats", type=int, default=2)
    parser.add_argument("--heavy_skip", default="space_to_batch")
    parser.add_argument("--kind", choices=("conv", "depthwise"), default="conv")
    parser.add_argument("--filters", type=int, default=256)
    parser.add_argument("--jit", action="store_true", help="tf.function(jit_compile=True)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def train_step(op, kernel, rate, implementation, jit):
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def step(inputs, upstream):
        with tf.GradientTape() as tape:
            tape.watch([inputs, kernel])
            outputs = op(inputs, kernel, rate, "same", implementation)
            loss = tf.reduce_sum(outputs * upstream)
        return tape.gradient(loss, [inputs, kernel])

    return step


def bench_shape(shape, args, rates, implementations):
    import tensorflow as tf

    from deeplab_tf.layers import atrous_conv2d
    from deeplab_tf.layers import atrous_depthwise_conv2d
    from deeplab_tf.layers.atrous_auto import select_implementation

    heavy = int(np.prod(shape)) > HEAVY
    repeats = args.heavy_repeats if heavy else args.repeats
    if heavy:
        implementations = [i for i in implementations if i not in args.heavy_skip.split(",")]
    depthwise = args.kind == "depthwise"
    op = atrous_depthwise_conv2d if depthwise else atrous_conv2d
    out_channels = shape[-1] if depthwise else args.filters
    generator = tf.random.Generator.from_seed(args.seed)
    inputs = generator.normal(shape)
    kernel = generator.normal((3, 3, shape[-1], 1 if depthwise else args.filters)) * 0.05
    upstream = generator.normal(shape[:3] + (out_channels,))
    steps = {(impl, rate): train_step(op, kernel, rate, impl, args.jit)
             for impl in implementations for rate in rates}
    if ("native", 1) not in steps:
        steps[("native", 1)] = train_step(op, kernel, 1, "native", args.jit)
    for step in steps.values():  # trace + warm up
        [g.numpy() for g in step(inputs, upstream)]
    times = {key: [] for key in steps}
    order = list(steps)
    rng = random.Random(args.seed)
    for _ in range(repeats):
        rng.shuffle(order)
        for key in order:
            start = time.perf_counter()
            [g.numpy() for g in steps[key](inputs, upstream)]
            times[key].append(1e3 * (time.perf_counter() - start))
    base = float(np.median(times[("native", 1)]))
    name = "x".join(map(str, shape))
    print(f"\n### {name} -> {out_channels} ({args.kind}, {repeats} repeats"
          f"{', heavy: skips ' + args.heavy_skip if heavy and args.heavy_skip else ''})\n")
    print("| implementation | " + " | ".join(f"rate {r}" for r in rates) + " |")
    print("|---|" + "---|" * len(rates))
    for impl in implementations:
        cells = []
        for rate in rates:
            ts = times[(impl, rate)]
            cell = (f"{np.median(ts) / base:.2f}x ({min(ts):.0f}/{np.median(ts):.0f}/"
                    f"{max(ts):.0f})")
            if impl == "auto":
                picked = select_implementation(shape, kernel.shape, rate, "same", depthwise)
                cell += f" [{picked}]"
            cells.append(cell)
        print(f"| {impl} | " + " | ".join(cells) + " |")
    sys.stdout.flush()


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    rates = [int(r) for r in args.rates.split(",")]
    implementations = args.implementations.split(",")
    print(provenance.describe())
    print(f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, "
          f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, "
          f"jit_compile={args.jit}, load average at start {os.getloadavg()[0]:.1f}")
    print("Cells: median / (native rate 1 median) (min/median/max ms), forward + both gradients.")
    start = time.perf_counter()
    for shape in args.shapes.split(","):
        bench_shape(tuple(int(s) for s in shape.split("x")), args, rates, implementations)
    print(f"\nTotal {time.perf_counter() - start:.0f} s, load average at end "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
