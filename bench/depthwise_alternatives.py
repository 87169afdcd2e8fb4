"""Exact alternatives to TF's depthwise 3x3 convolution: training-step cost per shape.

    python -m bench.depthwise_alternatives [--shapes=8x161x161x32:1,...] [--alternatives=...]
        [--repeats=5] [--profile_model] [--profile_steps=2]

For each `NxHxWxC:rate` shape (stride 1, "same", multiplier 1, float32) and each alternative, a
`tf.function` computes the forward pass and both gradients (input and kernel) of
`sum(y * g)` for a fixed random `g`. Every alternative is first checked against `native`
(values and both gradients, max abs difference <= 1e-5 * max abs of native); then all run once
to trace and warm up, and the repeats run interleaved (each repeat visits every alternative in
a fresh shuffled order) so all see the same machine load. Cells: median ms, the ratio to
native's median, min/max ms, and whether it is exact.

Alternatives:
- `native`: `tf.nn.depthwise_conv2d(dilations=rate)` (oneDNN's depthwise kernels).
- `native_xla`: the same, forward and gradients in one `tf.function(jit_compile=True)`.
- `grouped`: `tf.nn.conv2d` with a `[3, 3, 1, C]` kernel on C channels (C groups); the
  gradients are TF's conv gradients. `grouped_xla`: the same under XLA.
- `shifted`: the sum of the 9 per-channel products of shifted views (one pad, then 9 slices).
  `shifted_xla`: the same under XLA, which fuses it into one elementwise loop.
- `nchw_xla`: transpose to NCHW, native depthwise, transpose back, under XLA (TF's CPU kernel
  has no NCHW depthwise, so only the XLA variant exists).
- `flip_grad`: native forward; input gradient = native depthwise *forward* of the upstream
  gradient with the 180-degree-rotated kernel (the same "same" conv, exact for odd kernels);
  kernel gradient = TF's `DepthwiseConv2dNativeBackpropFilter`.
- `flip_grad_xla_filter`: as `flip_grad`, with the kernel gradient as 9 per-channel
  reductions of shifted views under XLA.
- `direct`: `bench/depthwise_direct.py`'s `direct_depthwise_conv2d`: the op's own dilation for
  the forward pass and (rotated kernel) the input gradient, TF's space-to-batch kernel gradient.

An alternative whose second (warm) call takes more than `--slow_factor` times native's is timed
in the first repeat only (marked "1 run"), to keep the run short.

`--shapes=` (empty) skips the per-shape table. `--model_step` measures the whole `camvid_mnv2_v3plus` SGD step (321x321, batch 8, at
`--output_stride`) with its dilated depthwise layers on `native` and on `direct` (one model,
same weights, two traced steps, alternating for `--model_repeats` repeats).

`--profile_model` first traces `--profile_steps` SGD steps of the `camvid_mnv2_v3plus` model
(DeepLabv3+ MobileNetV2 OS16, 128-channel heads, 321x321 batch 8) with `tf.profiler` and
prints the time per op type (summed over threads) and the depthwise share per layer.
"""

import argparse
import collections
import glob
import os
import random
import re
import sys
import tempfile
import time

import numpy as np

from bench import provenance


# MobileNetV2 DeepLabv3+ at 321x321 batch 8: expanded_conv, block_2, block_4/5, block_7-9,
# block_10-12 (OS16); block_14-16 at OS16 (rate 2) and OS8 (rate 4); block_11-13 at OS8.
# Xception-65's separable ASPP (2048 channels) at 321 and 513 crops, OS16.
DEFAULT_SHAPES = ("8x161x161x32:1,8x81x81x144:1,8x41x41x192:1,8x21x21x384:1,8x21x21x576:1,"
                  "8x21x21x960:2,8x41x41x576:2,8x41x41x960:4,"
                  "8x21x21x2048:6,8x21x21x2048:12,4x33x33x2048:12,4x33x33x2048:18")
ALTERNATIVES = ("native", "direct", "native_xla", "grouped", "grouped_xla", "shifted",
                "shifted_xla", "nchw_xla", "flip_grad", "flip_grad_xla_filter")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES)
    parser.add_argument("--alternatives", default=",".join(ALTERNATIVES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow_factor", type=float, default=8.0)
    parser.add_argument("--profile_model", action="store_true")
    parser.add_argument("--profile_steps", type=int, default=2)
    parser.add_argument("--model_step", action="store_true")
    parser.add_argument("--model_repeats", type=int, default=5)
    parser.add_argument("--output_stride", type=int, default=16)
    return parser.parse_args(argv)


def _alternatives():
    import tensorflow as tf

    from bench.depthwise_direct import direct_depthwise_conv2d

    def native(x, w, rate):
        return tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=[rate, rate])

    def grouped(x, w, rate):
        return tf.nn.conv2d(x, tf.transpose(w, [0, 1, 3, 2]), 1, "SAME", dilations=rate)

    def shifted(x, w, rate):
        height, width = x.shape[1], x.shape[2]
        padded = tf.pad(x, [[0, 0], [rate, rate], [rate, rate], [0, 0]])
        terms = [padded[:, rate * u:rate * u + height, rate * v:rate * v + width, :] * w[u, v, :, 0]
                 for u in range(3) for v in range(3)]
        return tf.add_n(terms)

    def nchw(x, w, rate):
        y = tf.nn.depthwise_conv2d(tf.transpose(x, [0, 3, 1, 2]), w, [1, 1, 1, 1], "SAME",
                                   dilations=[rate, rate], data_format="NCHW")
        return tf.transpose(y, [0, 2, 3, 1])

    def filter_grad_shifted(x, g, rate):
        height, width = x.shape[1], x.shape[2]
        padded = tf.pad(x, [[0, 0], [rate, rate], [rate, rate], [0, 0]])
        taps = [tf.reduce_sum(padded[:, rate * u:rate * u + height, rate * v:rate * v + width, :]
                              * g, axis=[0, 1, 2]) for u in range(3) for v in range(3)]
        return tf.reshape(tf.stack(taps), [3, 3, -1, 1])

    filter_grad_xla = tf.function(filter_grad_shifted, jit_compile=True)

    def flip(filter_grad):
        def op(x, w, rate):
            @tf.custom_gradient
            def conv(x, w):
                def grad(g):
                    dx = native(g, tf.reverse(w, [0, 1]), rate)
                    dw = filter_grad(x, g, rate)
                    return dx, dw
                return native(x, w, rate), grad
            return conv(x, w)
        return op

    def native_filter_grad(x, g, rate):
        return tf.compat.v1.nn.depthwise_conv2d_native_backprop_filter(
            x, [3, 3, x.shape[-1], 1], g, [1, 1, 1, 1], "SAME", dilations=[1, rate, rate, 1])

    return {"native": (native, False), "native_xla": (native, True),
            "grouped": (grouped, False), "grouped_xla": (grouped, True),
            "shifted": (shifted, False), "shifted_xla": (shifted, True),
            "nchw_xla": (nchw, True),
            "flip_grad": (flip(native_filter_grad), False),
            "flip_grad_xla_filter": (flip(filter_grad_xla), False),
            "direct": (lambda x, w, rate: direct_depthwise_conv2d(x, w, rate, "same"), False)}


def train_step(fn, jit, rate):
    import tensorflow as tf

    @tf.function(jit_compile=jit)
    def step(inputs, kernel, upstream):
        with tf.GradientTape() as tape:
            tape.watch([inputs, kernel])
            outputs = fn(inputs, kernel, rate)
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [inputs, kernel])

    return step


def relative_error(values, reference):
    return max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
               for a, b in zip(values, reference))


def bench_shape(shape, rate, names, args):
    import tensorflow as tf

    alternatives = _alternatives()
    generator = tf.random.Generator.from_seed(args.seed)
    inputs = generator.normal(shape)
    kernel = generator.normal((3, 3, shape[-1], 1)) * 0.3
    upstream = generator.normal(shape)
    steps, errors = {}, {}
    reference = [t.numpy() for t in train_step(alternatives["native"][0], False, rate)(
        inputs, kernel, upstream)]
    for name in names:
        fn, jit = alternatives[name]
        step = train_step(fn, jit, rate)
        try:
            outputs = [t.numpy() for t in step(inputs, kernel, upstream)]  # trace + warm up
        except (tf.errors.OpError, ValueError) as error:
            errors[name] = type(error).__name__ + ": " + str(error).split("\n")[0][:80]
            continue
        steps[name] = step
        errors[name] = relative_error(outputs, reference)
    warm = {}
    for name, step in steps.items():
        start = time.perf_counter()
        [t.numpy() for t in step(inputs, kernel, upstream)]
        warm[name] = time.perf_counter() - start
    slow = {name for name in steps
            if "native" in warm and warm[name] > args.slow_factor * warm["native"]}
    times = {name: [] for name in steps}
    order = list(steps)
    rng = random.Random(args.seed)
    for repeat in range(args.repeats):
        rng.shuffle(order)
        for name in order:
            if repeat and name in slow:
                continue
            start = time.perf_counter()
            [t.numpy() for t in steps[name](inputs, kernel, upstream)]
            times[name].append(1e3 * (time.perf_counter() - start))
    base = float(np.median(times["native"])) if "native" in times else float("nan")
    label = "x".join(map(str, shape)) + f" rate {rate}"
    rows = []
    for name in names:
        if name not in steps:
            rows.append(f"| {label} | {name} | - | - | - | fails: {errors[name]} |")
            continue
        ts = times[name]
        exact = "yes" if errors[name] <= 1e-5 else "NO"
        rows.append(f"| {label} | {name} | {np.median(ts):.1f} | {np.median(ts) / base:.2f}x | "
                    f"{min(ts):.1f}/{max(ts):.1f}{' (1 run)' if name in slow else ''} | "
                    f"{exact} ({errors[name]:.1e}) |")
    print("\n".join(rows))
    sys.stdout.flush()


def mnv2_train_step(output_stride=16):
    """Returns (model, make_step): the camvid_mnv2_v3plus model (random weights) and a factory
    of traced SGD steps on one fixed 8x321x321 batch."""
    import keras
    import tensorflow as tf

    from deeplab_tf.config import ModelConfig
    from deeplab_tf.models import build_model

    config = ModelConfig(arch="deeplab_v3_plus", backbone="mobilenet_v2",
                         output_stride=output_stride, aspp_filters=128, decoder_filters=128)
    model = build_model(config, 11).model
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    images = tf.random.normal((8, 321, 321, 3), seed=1)
    labels = tf.random.uniform((8, 321, 321), 0, 11, tf.int32, seed=2)

    def make_step():
        @tf.function
        def step():
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, grads

        return step

    return model, make_step


def _sublayers(layer):
    for sub in getattr(layer, "layers", []):
        yield sub
        yield from _sublayers(sub)


def model_step(output_stride, repeats):
    """Whole-model SGD step, dilated depthwise layers on `native` vs `direct`, alternating."""
    from bench.depthwise_direct import direct_depthwise_conv2d

    from deeplab_tf.layers import AtrousDepthwiseConv2D, atrous_conv

    # "direct" is not a deeplab_tf implementation (see deeplab_tf.layers.atrous_auto): it is
    # registered here, for this process only, so that the model's layers can run it.
    atrous_conv._IMPLEMENTATIONS["direct"] = (
        lambda op, inputs, kernel, rate, padding: direct_depthwise_conv2d(inputs, kernel, rate, padding))
    atrous_conv.ATROUS_IMPLEMENTATIONS += ("direct",)

    model, make_step = mnv2_train_step(output_stride)
    dilated = [layer for layer in _sublayers(model)
               if isinstance(layer, AtrousDepthwiseConv2D) and layer.rate > 1]
    steps, grads = {}, {}
    weights = model.get_weights()
    for implementation in ("native", "direct"):
        for layer in dilated:
            layer.implementation = implementation
        steps[implementation] = make_step()
        model.set_weights(weights)
        _, grads[implementation] = steps[implementation]()  # trace; same weights both times
    model.set_weights(weights)
    # Relative to the largest gradient of the model: some variables' gradients are float32
    # noise (~1e-8, e.g. the beta of a batch norm followed by another), so per-variable ratios
    # mean nothing there.
    error = relative_error([np.concatenate([g.numpy().ravel() for g in grads["direct"]])],
                           [np.concatenate([g.numpy().ravel() for g in grads["native"]])])
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()[0].numpy()
            times[name].append(time.perf_counter() - start)
    native = float(np.median(times["native"]))
    print(f"\ncamvid_mnv2_v3plus SGD step, 8x321x321, OS{output_stride}, "
          f"{len(dilated)} dilated depthwise layers "
          f"(rates {sorted({layer.rate for layer in dilated})}), {repeats} alternating repeats; "
          f"first-step gradients direct vs native: max abs diff / max abs gradient {error:.1e}\n")
    print("| dilated depthwise | min s | median s | max s | speed-up |\n|---|---|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.3f} | {np.median(ts):.3f} | {max(ts):.3f} | "
              f"{native / np.median(ts):.3f}x |")


def profile_model(steps):
    """Op-type and per-layer depthwise time of the camvid_mnv2_v3plus training step."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    _, make_step = mnv2_train_step()
    step = make_step()
    step()[0].numpy()
    logdir = tempfile.mkdtemp(prefix="depthwise_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        step()[0].numpy()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    path = sorted(glob.glob(logdir + "/**/*.xplane.pb", recursive=True))[-1]
    with open(path, "rb") as file:
        space.ParseFromString(file.read())
    by_type, per_layer = collections.Counter(), collections.defaultdict(lambda: [0.0] * 3)
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("$"):
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if op_type in ("Process", "Run") or op_type.strip().startswith("__inference"):
                    continue  # containers, not ops
                ms = event.duration_ps / 1e9 / steps
                by_type[op_type] += ms
                if "DepthwiseConv2dNative" in op_type:
                    match = re.search(r"/((?:expanded_conv|block_\d+)_depthwise)", op_name)
                    part = 1 if "BackpropInput" in op_type else 2 if "Filter" in op_type else 0
                    per_layer[match.group(1) if match else op_name][part] += ms
    total = sum(by_type.values())
    depthwise = sum(map(sum, per_layer.values()))
    dense = sum(v for k, v in by_type.items() if "Conv2D" in k and "Depthwise" not in k)
    print(f"\ncamvid_mnv2_v3plus train step (321x321, batch 8), {steps} profiled steps: "
          f"op time {total:.0f} ms/step summed over threads; depthwise {depthwise:.0f} ms "
          f"({100 * depthwise / total:.1f}%), dense conv {dense:.0f} ms "
          f"({100 * dense / total:.1f}%)\n")
    print("| op type | ms/step | share |\n|---|---|---|")
    for op_type, ms in by_type.most_common(15):
        print(f"| {op_type} | {ms:.0f} | {100 * ms / total:.1f}% |")
    print("\n| depthwise layer | forward ms | input grad ms | kernel grad ms |\n|---|---|---|---|")
    for layer, parts in sorted(per_layer.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {layer} | " + " | ".join(f"{p:.1f}" for p in parts) + " |")


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    print(provenance.describe())
    print(f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, "
          f"load average at start {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    if args.profile_model:
        profile_model(args.profile_steps)
    if args.model_step:
        model_step(args.output_stride, args.model_repeats)
    if not args.shapes:
        return
    names = args.alternatives.split(",")
    print(f"\nDepthwise 3x3, stride 1, 'same', forward + both gradients, {args.repeats} "
          "interleaved repeats; exact = max abs diff <= 1e-5 max abs (values and gradients).\n")
    print("| shape | alternative | median ms | / native | min/max ms | exact (rel. err) |")
    print("|---|---|---|---|---|---|")
    for spec in args.shapes.split(","):
        shape, rate = spec.split(":")
        bench_shape(tuple(int(s) for s in shape.split("x")), int(rate), names, args)
    print(f"\nTotal {time.perf_counter() - start:.0f} s, load average at end "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
