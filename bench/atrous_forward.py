"""Forward-only (inference) cost of a 3x3 atrous convolution per implementation, the
counterpart of `bench/atrous_train_step.py` (which times forward + both gradients).

    python -m bench.atrous_forward [--shapes=1x33x33x2048,1x65x65x2048] [--rates=12,18,24]
        [--implementations=native,shifted_gemm,auto] [--filters=256] [--repeats=7]

One `tf.function` per (shape, rate, implementation), traced and run once, then the repeats run
interleaved in a fresh shuffled order each. Outputs are checked equal to native's (1e-5
relative) first. Printed: min / median / max ms and the median over native's at the same rate;
for `auto` the implementation it picked.
"""

import argparse
import random
import time

import numpy as np

from bench import provenance


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="1x33x33x2048,1x65x65x2048")
    parser.add_argument("--rates", default="12,18,24")
    parser.add_argument("--implementations", default="native,shifted_gemm,auto")
    parser.add_argument("--filters", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print(provenance.describe())
    import tensorflow as tf

    from deeplab_tf.layers import atrous_conv2d
    from deeplab_tf.layers.atrous_auto import select_implementation

    rng = np.random.default_rng(args.seed)
    cases = []
    for shape_text in args.shapes.split(","):
        shape = tuple(int(v) for v in shape_text.split("x"))
        x = tf.constant(rng.standard_normal(shape).astype(np.float32))
        w = tf.constant(rng.standard_normal((3, 3, shape[-1], args.filters)).astype(np.float32) * 0.02)
        for rate in (int(r) for r in args.rates.split(",")):
            reference = None
            for implementation in args.implementations.split(","):
                fn = tf.function(lambda x, w, r=rate, i=implementation: atrous_conv2d(x, w, r, "same", i))
                y = fn(x, w).numpy()
                if reference is None:
                    reference = y
                error = np.abs(y - reference).max() / np.abs(reference).max()
                assert error < 1e-5, (shape_text, rate, implementation, error)
                picked = select_implementation(shape, w.shape, rate, "same", False) if implementation == "auto" else ""
                cases.append(((shape_text, rate, implementation, picked), fn, x, w))
    times = {key: [] for key, *_ in cases}
    order = list(cases)
    for _ in range(args.repeats):
        random.Random(args.seed + len(times[cases[0][0]])).shuffle(order)
        for key, fn, x, w in order:
            start = time.perf_counter()
            fn(x, w).numpy()
            times[key].append(1e3 * (time.perf_counter() - start))
    print("| shape | rate | implementation | min ms | median ms | max ms | median / native |")
    print("|---|---|---|---|---|---|---|")
    for (shape_text, rate, implementation, picked), *_ in cases:
        t = times[(shape_text, rate, implementation, picked)]
        native = times.get((shape_text, rate, "native", ""))
        ratio = f"{np.median(t) / np.median(native):.2f}x" if native else ""
        name = f"{implementation} ({picked})" if picked else implementation
        print(f"| {shape_text} | {rate} | {name} | {min(t):.1f} | {np.median(t):.1f} | {max(t):.1f} | {ratio} |")


if __name__ == "__main__":
    main()
