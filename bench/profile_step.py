"""Where deeplab-tf's DeepLabv3 ResNet-50 OS16 step spends its time (issue 9): a tf.profiler trace
of the peers benchmark's step, summed per op type, with FLOPs and GFLOP/s of the convolutions.

    python -m bench.profile_step [--mode=training|inference|both] [--steps=3] [--warmup=2]
        [--size=N|HxW] [--batch=B] [--override=model.atrous_implementation=native]
        [--top=25] [--peak] [--logdir=DIR] [--json=FILE] [--precision=float32|bfloat16] [--served]

The model and step are those of `bench/peers_compare.py`'s deeplab-tf worker (experiment
`voc_v3_r50_os16`, random weights, 21 classes; training: 321x321 batch 4, forward in training
mode, masked cross-entropy, SGD with momentum; inference: 513x513 batch 1, logits resized to the
input; with --served, the model the exporters serve, as the peers benchmark runs it:
`export.inference_model.served_form`). After --warmup untimed steps, --steps steps run under
`tf.profiler.experimental.start`; the XPlane the profiler writes is parsed (host plane, executor threads: one event per op
kernel, named `node:OpType`, OpType after grappler and oneDNN rewrites, e.g. `_MklNativeConv2D`).

Printed, per step:
1. Per op type: total ms, share of the summed op time, count. Ops of one step may overlap
   (two inter-op threads), so the shares are of summed op time; the wall time of the profiled
   steps is printed too.
2. Per convolution kind (forward, backprop input, backprop filter, depthwise, the per-tap
   MatMuls of `shifted_gemm`): ms, share, GFLOP and achieved GFLOP/s. FLOPs are counted from
   the traced graph's static shapes (2 per multiply-add, every tap counted, padding included,
   as `bench/peers/tf_common.py` does), summed per kind and divided by that kind's time.
3. With --peak: the dense 3x3 conv peak (8x65x65x256->256, forward + both gradients, as
   `bench/peers/worker_conv_peak.py`), measured in this process after the profile, and each
   kind's GFLOP/s as a fraction of it. On a loaded machine only the shares are meaningful.
"""

import argparse
import collections
import glob
import json
import os
import re
import tempfile
import time

from bench import provenance


DEFAULTS = {"training": ("321", 4), "inference": ("513", 1)}
# Kind of a convolution-like op, from its type in the graph (before rewrites) or in the trace
# (after: `_MklNativeConv2DBackpropFilterWithBias`, `_FusedConv2D`, `_MklNativeFusedConv2D`...).
KINDS = (
    ("depthwise backprop input", r"DepthwiseConv2dNativeBackpropInput"),
    ("depthwise backprop filter", r"DepthwiseConv2dNativeBackpropFilter"),
    ("depthwise forward", r"DepthwiseConv2dNative|FusedDepthwiseConv2d"),
    ("conv backprop input", r"Conv2DBackpropInput"),
    ("conv backprop filter", r"Conv2DBackpropFilter"),
    ("conv forward", r"Conv2D"),
    ("matmul", r"MatMul"),
)


def kind_of(op_type):
    for kind, pattern in KINDS:
        if re.search(pattern, op_type):
            return kind
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("training", "inference", "both"), default="both")
    parser.add_argument("--steps", type=int, default=3, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--size", help="N or HxW (default 321 training, 513 inference)")
    parser.add_argument("--batch", type=int, help="default 4 training, 1 inference")
    parser.add_argument("--experiment", default="voc_v3_r50_os16")
    parser.add_argument("--override", default="", help="experiment overrides, e.g. model.output_stride=8")
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: the model built under Keras' mixed_bfloat16 policy")
    parser.add_argument("--served", action="store_true",
                        help="inference: the model as the exporter serves it (batch norms folded, weights in the "
                             "compute dtype: export.inference_model.served_form), not the Keras model")
    parser.add_argument("--top", type=int, default=25, help="op types listed (the rest summed)")
    parser.add_argument("--peak", action="store_true", help="also measure the dense conv peak")
    parser.add_argument("--logdir", default="", help="keep the trace here (TensorBoard's profile plugin reads it)")
    parser.add_argument("--json", default="", help="also write the tables to this file")
    return parser.parse_args(argv)


# === Graph FLOPs ===

def _dims(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def op_flops(op):
    """Forward-convention FLOPs of one convolution-like graph op (0 when not one or unknown)."""
    import numpy as np

    t = op.type
    if t in ("Conv2D", "DepthwiseConv2dNative"):
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    elif t in ("Conv2DBackpropInput", "DepthwiseConv2dNativeBackpropInput"):
        out, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
    elif t in ("Conv2DBackpropFilter", "DepthwiseConv2dNativeBackpropFilter"):
        out, kernel = _dims(op.inputs[2]), _dims(op.outputs[0])
    elif t in ("MatMul", "BatchMatMulV2"):
        a, out = _dims(op.inputs[0]), _dims(op.outputs[0])
        if a is None or out is None:
            return 0.0
        k = a[-2] if op.get_attr("adj_x" if t == "BatchMatMulV2" else "transpose_a") else a[-1]
        return 2.0 * float(np.prod(out)) * k
    else:
        return 0.0
    if out is None or kernel is None:
        return 0.0
    taps = kernel[0] * kernel[1] * (1 if t.startswith("Depthwise") else kernel[2])
    return 2.0 * float(np.prod(out)) * taps


def graph_flops_by_kind(graph, seen=None):
    """{kind: FLOPs} over `graph` and the functions it calls."""
    seen = set() if seen is None else seen
    totals = collections.Counter()
    functions = dict(getattr(graph, "_functions", {}))
    for op in graph.get_operations():
        kind = kind_of(op.type)
        if kind:
            totals[kind] += op_flops(op)
        if op.type in ("StatefulPartitionedCall", "PartitionedCall"):
            name = op.get_attr("f").name
            function = functions.get(name)
            if function is not None and name not in seen and hasattr(function, "graph"):
                seen.add(name)
                totals.update(graph_flops_by_kind(function.graph, seen))
    return totals


# === The step (bench/peers/worker_deeplab_tf.py + tf_common.make_step) ===

def build_step(args, mode, with_model=False, model=None):
    """Returns (step tf.function, its inputs, a label[, the model]). `args` has size, batch,
    experiment, override, num_classes and optionally precision ("float32" or "bfloat16": the
    model's Keras dtype policy, float32 or mixed_bfloat16), jit (the training step compiled by
    XLA, its speed choices timed under XLA as the trainer's are), xla_picks (default True;
    False: with jit, the speed choices timed without XLA) and keras_sgd (default False: the
    trainer's `MomentumSGD`; True: Keras' SGD); `model` replaces the experiment's model if given."""
    import keras
    import tensorflow as tf

    import experiments
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.layers import autotune
    from deeplab_tf.training.losses import masked_sparse_cross_entropy
    from deeplab_tf.training.momentum_sgd import MomentumSGD
    from deeplab_tf.training.trainer import freeze_batch_norm
    from deeplab_tf.models import build_model
    from bench.peers.protocol import make_inputs
    from bench.peers.tf_common import resize_to, set_precision
    from export.inference_model import served_form

    size, batch = DEFAULTS[mode]
    size, batch = args.size or size, args.batch or batch
    height, width = (int(v) for v in (size.split("x") if "x" in size else (size, size)))
    config = dict(mode=mode, batch=batch, height=height, width=width, num_classes=args.num_classes, seed=0)
    experiment = experiments.get_experiment(args.experiment)
    if args.override:
        experiment = apply_overrides(experiment, args.override)
    keras.utils.set_random_seed(0)
    served = mode == "inference" and getattr(args, "served", False)
    if model is None:
        set_precision({"precision": getattr(args, "precision", "float32")}, keras)
        model = build_model(experiment.model, args.num_classes).model
        if served:
            model, _ = served_form(model)
        if mode == "training" and not experiment.train.train_batch_norm:
            freeze_batch_norm(model)  # the recipe's frozen batch norm, as the trainer does
    images, labels = (tf.constant(v) for v in make_inputs(config))
    if mode == "inference":
        step = tf.function(lambda x: resize_to(model(x, training=False), (height, width)))
        inputs = (images,)
    else:
        sgd = keras.optimizers.SGD if getattr(args, "keras_sgd", False) else MomentumSGD
        optimizer = sgd(learning_rate=1e-3, momentum=0.9)
        variables = model.trainable_variables

        jit = getattr(args, "jit", False)

        @tf.function(jit_compile=jit or None)
        def step(x, y):
            with tf.GradientTape() as tape, autotune.compiled_by_xla(jit and getattr(args, "xla_picks", True)):
                logits = resize_to(model(x, training=True), (height, width))
                loss = masked_sparse_cross_entropy(y, tf.cast(logits, tf.float32))
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return loss

        inputs = (images, labels)
    m = experiment.model
    label = (f"{mode}: {m.arch} {m.backbone} OS{m.output_stride} atrous={m.atrous_implementation} "
             f"fused_batch_norm={m.fused_batch_norm}"
             f"{' (frozen)' if mode == 'training' and not experiment.train.train_batch_norm else ''}, "
             f"{batch}x{height}x{width}, {model.dtype_policy.name}"
             f"{', served (batch norms folded, weights in the compute dtype)' if served else ''}"
             f"{', XLA' if mode == 'training' and getattr(args, 'jit', False) else ''}")
    return (step, inputs, label, model) if with_model else (step, inputs, label)


# === Trace parsing ===

def read_trace(logdir):
    """Returns [(op type, node name, duration in ms)] of the op kernels in the newest XPlane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    events = []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and "inter_op" not in line.name:
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith(("ThreadpoolListener", "ExecutorState")):
                    continue
                node, op_type = name.rsplit(":", 1)
                events.append((op_type, node, event.duration_ps / 1e9))
    return events


def tables(events, steps, flops, peak):
    total = sum(ms for _, _, ms in events)
    by_type = collections.defaultdict(lambda: [0.0, 0])
    by_kind = collections.defaultdict(float)
    for op_type, _, ms in events:
        by_type[op_type][0] += ms
        by_type[op_type][1] += 1
        kind = kind_of(op_type)
        if kind:
            by_kind[kind] += ms
    op_rows = sorted(([t, ms / steps, ms / total, n / steps] for t, (ms, n) in by_type.items()),
                     key=lambda row: -row[1])
    kind_rows = []
    for kind, _ in KINDS:
        ms = by_kind.get(kind, 0.0) / steps
        gflop = flops.get(kind, 0.0) / 1e9
        if not ms and not gflop:
            continue
        rate = gflop / (ms / 1e3) if ms else float("nan")
        kind_rows.append([kind, ms, ms * steps / total, gflop, rate, rate / peak if peak else None])
    conv_ms = sum(row[1] for row in kind_rows)
    conv_gflop = sum(row[3] for row in kind_rows)
    kind_rows.append(["all convolutions", conv_ms, conv_ms * steps / total, conv_gflop,
                      conv_gflop / (conv_ms / 1e3), conv_gflop / (conv_ms / 1e3) / peak if peak else None])
    return total / steps, op_rows, kind_rows


def print_tables(label, wall_ms, op_ms, op_rows, kind_rows, top, peak):
    print(f"\n## {label}")
    print(f"wall {wall_ms:.0f} ms/step; summed op time {op_ms:.0f} ms/step "
          f"({op_ms / wall_ms:.2f}x the wall time)\n")
    print("| op type | ms/step | share | count/step |")
    print("|---|---|---|---|")
    for op_type, ms, share, count in op_rows[:top]:
        print(f"| {op_type} | {ms:.1f} | {100 * share:.1f}% | {count:g} |")
    rest = op_rows[top:]
    if rest:
        print(f"| ({len(rest)} other types) | {sum(r[1] for r in rest):.1f} | "
              f"{100 * sum(r[2] for r in rest):.1f}% | {sum(r[3] for r in rest):g} |")
    peak_head = " | of peak" if peak else ""
    print(f"\n| convolution kind | ms/step | share | GFLOP/step | GFLOP/s{peak_head} |")
    print("|---|---|---|---|---|" + ("---|" if peak else ""))
    for kind, ms, share, gflop, rate, fraction in kind_rows:
        tail = f" | {100 * fraction:.0f}%" if peak else ""
        print(f"| {kind} | {ms:.1f} | {100 * share:.1f}% | {gflop:.1f} | {rate:.0f}{tail} |")


def conv_peak(repeats=5):
    """Median GFLOP/s of worker_conv_peak's step (8x65x65x256->256, forward + both gradients)."""
    from bench.peers import worker_conv_peak

    run, info = worker_conv_peak.build({"seed": 0, "peak_shape": "8x65x65x256->256"})
    run()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return info["step_gflop"] / sorted(seconds)[len(seconds) // 2]


def main(argv=None):
    args = parse_args(argv)
    run_provenance = provenance.record()
    print(provenance.describe(run_provenance))
    import tensorflow as tf

    results = {"provenance": run_provenance}
    modes = ("training", "inference") if args.mode == "both" else (args.mode,)
    profiled = {}
    for mode in modes:
        step, inputs, label = build_step(args, mode)
        concrete = step.get_concrete_function(*inputs)
        flops = graph_flops_by_kind(concrete.graph)
        for _ in range(args.warmup):
            float(tf.reduce_sum(step(*inputs)))
        logdir = os.path.join(args.logdir, mode) if args.logdir else tempfile.mkdtemp(prefix=f"profile_{mode}_")
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(args.steps):
            float(tf.reduce_sum(step(*inputs)))
        wall_ms = (time.perf_counter() - start) * 1e3 / args.steps
        tf.profiler.experimental.stop()
        profiled[mode] = (label, wall_ms, read_trace(logdir), flops)
    peak = conv_peak() if args.peak else None
    if peak:
        print(f"dense 3x3 conv peak (8x65x65x256->256, fwd + both grads): {peak:.0f} GFLOP/s")
    for mode, (label, wall_ms, events, flops) in profiled.items():
        op_ms, op_rows, kind_rows = tables(events, args.steps, flops, peak)
        print_tables(label, wall_ms, op_ms, op_rows, kind_rows, args.top, peak)
        results[mode] = dict(label=label, wall_ms=wall_ms, op_ms=op_ms, op_types=op_rows,
                             convolutions=kind_rows, peak_gflops=peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
