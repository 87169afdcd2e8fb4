"""The per-tap implementations' sum in bfloat16: tap products summed in bfloat16 against in float32.

    python -m bench.tap_sum_precision [--rounds=15]

`shifted_gemm` (and `gemm_tap_gradient`'s forward pass) compute an atrous convolution as one
GEMM per tap and sum the products. In bfloat16, `tf.add_n` of the products rounds every partial
sum; `deeplab_tf.layers.atrous_implementations` sums them in float32 and rounds once. For the
ASPP's shapes this prints, for both ways of summing:
- the error of the bfloat16 output against a float64 computation of the same rounded inputs
  (mean |error| / mean |exact output|), with oneDNN's own dilated convolution (`native`) beside;
- the time of the implementation (forward pass for `shifted_gemm` as served; forward pass and
  kernel gradient for `gemm_tap_gradient` as trained), the two ways traced as two
  `tf.function`s alternating for --rounds rounds after two warm-up calls: medians and their ratio.
"""

import argparse
import time

import numpy as np

from bench import provenance

# (implementation, input shape, rate, filters, training): ASPP's 3x3 branches in the peers'
# training step (4x321x321 at OS 16) and served step (513x513), and ResNet's last block at rate 8.
CASES = [("gemm_tap_gradient", (4, 21, 21, 2048), rate, 256, True) for rate in (6, 12, 18)] + [
    ("shifted_gemm", (1, 33, 33, 2048), rate, 256, False) for rate in (6, 12, 18)] + [
    ("gemm_tap_gradient", (4, 21, 21, 512), 8, 512, True)]


def summing_ways():
    """Returns `{name: function(list of tensors) -> tensor}`: the library's float32 sum, and
    `tf.add_n` in the terms' own type (what it did before)."""
    import tensorflow as tf

    from deeplab_tf.layers import atrous_implementations

    return {"bfloat16 sum": tf.add_n, "float32 sum": atrous_implementations._sum_in_float32}


def traced(implementation, x, kernel, rate, training, summing):
    """Returns a `tf.function` of no arguments tracing `implementation` with `summing` as the
    tap sum: the bfloat16 output, and with `training` the gradient of `kernel` (a variable)."""
    import tensorflow as tf

    from deeplab_tf.layers import atrous_implementations as impls

    library_sum = impls._sum_in_float32

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            y = impls.IMPLEMENTATIONS[implementation](impls.conv2d, x, kernel, rate, "same")
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        if not training:
            return [y]
        return [y, tape.gradient(loss, kernel)]

    impls._sum_in_float32 = summing
    try:
        step.get_concrete_function()  # traced now, with this sum
    finally:
        impls._sum_in_float32 = library_sum
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print(provenance.describe(), flush=True)
    import tensorflow as tf

    from deeplab_tf.layers import atrous_implementations as impls

    ways = summing_ways()
    for implementation, shape, rate, filters, training in CASES:
        rng = np.random.default_rng(rate)
        x = tf.cast(rng.standard_normal(shape), tf.bfloat16)
        kernel = tf.cast(rng.standard_normal((3, 3, shape[-1], filters)) / np.sqrt(9 * shape[-1]),
                         tf.bfloat16)
        exact = tf.nn.conv2d(tf.cast(x, tf.float64), tf.cast(kernel, tf.float64), 1, "SAME",
                             dilations=rate).numpy()
        native = impls.conv2d(x, kernel, "same", rate)
        kernel = tf.Variable(kernel)
        steps = {name: traced(implementation, x, kernel, rate, training, way)
                 for name, way in ways.items()}
        errors = {"native": native, **{name: step()[0] for name, step in steps.items()}}
        errors = {name: np.abs(tf.cast(y, tf.float64).numpy() - exact).mean() / np.abs(exact).mean()
                  for name, y in errors.items()}
        times = {name: [] for name in steps}
        for step in steps.values():
            step(), step()
        for _ in range(args.rounds):
            for name, step in steps.items():
                start = time.perf_counter()
                [t.numpy() for t in step()]
                times[name].append(time.perf_counter() - start)
        ms = {name: 1e3 * np.median(t) for name, t in times.items()}
        kind = "forward + kernel gradient" if training else "forward"
        print(f"{implementation} {kind} {'x'.join(map(str, shape))} -> {filters} rate {rate}: "
              + ", ".join(f"{name} error {errors[name]:.2e} {ms[name]:.2f} ms" for name in steps)
              + f" (ratio {ms['float32 sum'] / ms['bfloat16 sum']:.3f}); native error "
              f"{errors['native']:.2e}", flush=True)


if __name__ == "__main__":
    main()
