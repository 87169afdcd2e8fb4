"""The peers benchmark's deeplab-tf step (DeepLabv3 ResNet-50 OS16) in several variants, timed
alternately in one process (A B A B ...), after checking that they compute the same logits.

    python -m bench.step_variants --mode=training|inference [--rounds=3] [--warmup=1]
        [--variants="keras_bn:model.fused_batch_norm=false;fused_bn:"] [--size=N|HxW] [--batch=B]
        [--experiment=voc_v3_r50_os16] [--num_classes=21] [--precision=float32|bfloat16] [--jit]

A variant is `name:overrides`, where overrides are experiment overrides
(`model.atrous_implementation=native,model.fused_batch_norm=false`, as
`deeplab_tf.config.apply_overrides` takes) and the flags `+fold_bn` (inference only:
`deeplab_tf.models.fold_batch_norm`, as the exporter does), `+keras_depthwise` (the model's
`TunedDepthwiseConv2D`s made Keras' `DepthwiseConv2D`s again: always the compute dtype),
`+keras_conv` (its `TunedConv2D`s made Keras' `Conv2D`s again: oneDNN's kernel gradients),
`+keras_sgd` (training: Keras' SGD instead of the trainer's `MomentumSGD`) and
`+picks_without_xla` (with --jit: the speed choices timed without XLA, as before they were timed
under it). `--precision=bfloat16` builds every variant under Keras' `mixed_bfloat16` policy;
`--jit` compiles every variant's training step with XLA. Every variant
is built from the same seed and gets the first variant's weights;
its logits (inference mode, and training mode for --mode=training) must equal the first's to
--tolerance (1e-4) relative, or the script stops. The step is `bench/profile_step.py`'s (= the peers
benchmark worker's). Printed: min / median / max seconds per variant and the ratio of medians
to the first variant.
"""

import argparse
import random
import time

import numpy as np


from bench import profile_step, provenance


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("training", "inference"), default="training")
    parser.add_argument("--variants", default="keras_bn:model.fused_batch_norm=false;fused_bn:")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--experiment", default="voc_v3_r50_os16")
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--jit", action="store_true", help="training steps compiled by XLA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative logit difference")
    return parser.parse_args(argv)


def build_variant(args, spec, weights):
    import keras

    from deeplab_tf.layers.layer_classes import switch_layer_class
    from deeplab_tf.layers.tuned_conv import TunedConv2D
    from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D
    from deeplab_tf.models.fold_batch_norm import fold_batch_norm

    keras_classes = {"keras_depthwise": (TunedDepthwiseConv2D, keras.layers.DepthwiseConv2D),
                     "keras_conv": (TunedConv2D, keras.layers.Conv2D)}
    name, _, rest = spec.partition(":")
    parts = [p for p in rest.split("+")]
    overrides, flags = parts[0], set(parts[1:])
    known = ["fold_bn", *keras_classes, "picks_without_xla", "keras_sgd"]
    unknown = flags - set(known)
    if unknown:
        raise SystemExit(f"variant {name!r}: unknown flags {sorted(unknown)}; known: "
                         + ", ".join(f"+{flag}" for flag in known))
    step_args = argparse.Namespace(size=args.size, batch=args.batch, experiment=args.experiment,
                                   override=overrides, num_classes=args.num_classes,
                                   precision=args.precision, jit=args.jit,
                                   xla_picks="picks_without_xla" not in flags,
                                   keras_sgd="keras_sgd" in flags)
    step, inputs, label, model = profile_step.build_step(step_args, args.mode, with_model=True)
    for flag in flags & set(keras_classes):  # before the step's first call traces it
        switch_layer_class(model, *keras_classes[flag])
    if weights is not None:
        model.set_weights(weights)
    if "fold_bn" in flags:
        if args.mode != "inference":
            raise SystemExit("+fold_bn is for --mode=inference only")
        model = fold_batch_norm(model)
        step, inputs, label, _ = profile_step.build_step(step_args, args.mode, with_model=True, model=model)
    return name, step, inputs, f"{label}{' ' + ' '.join(sorted(flags)) if flags else ''}", model


def main(argv=None):
    args = parse_args(argv)
    print(provenance.describe())
    import tensorflow as tf

    variants, weights = [], None
    for spec in args.variants.split(";"):
        name, step, inputs, label, model = build_variant(args, spec, weights)
        if weights is None:
            weights = model.get_weights()  # before the training-mode call moves the statistics
        images = inputs[0]
        logits = {"inference": model(images, training=False).numpy()}
        if args.mode == "training":
            logits["training"] = model(images, training=True).numpy()
        if len(variants) == 0:
            expected = logits
        else:
            for key, value in logits.items():
                scale = np.abs(expected[key]).max()
                error = float(np.abs(value - expected[key]).max() / scale)
                print(f"{name}: logits ({key} mode) max relative difference {error:.2e}")
                if error > args.tolerance:
                    raise SystemExit(f"{name} differs from {variants[0][0]}")
        variants.append((name, step, inputs, label))
    # The training-mode check above updated the moving statistics of every variant alike.
    for name, step, inputs, label in variants:
        print(f"{name}: {label}")
        for _ in range(args.warmup):
            float(tf.reduce_sum(step(*inputs)))
    times = {name: [] for name, *_ in variants}
    rng = random.Random(args.seed)
    for _ in range(args.rounds):
        order = list(variants)
        rng.shuffle(order)
        for name, step, inputs, _ in order:
            start = time.perf_counter()
            float(tf.reduce_sum(step(*inputs)))
            times[name].append(time.perf_counter() - start)
    base = float(np.median(times[variants[0][0]]))
    print("\n| variant | min s | median s | max s | median / first |")
    print("|---|---|---|---|---|")
    for name, *_ in variants:
        t = times[name]
        print(f"| {name} | {min(t):.3f} | {np.median(t):.3f} | {max(t):.3f} | {np.median(t) / base:.3f} |")


if __name__ == "__main__":
    main()
