"""Do two ways of computing a training step give the same gradients? One batch, the loss the
trainer minimises, its gradients under each variant, compared with the first variant's.

    python -m bench.step_gradients --experiment=camvid_mnv2_voc_transfer [--batch=8] [--size=321]
        [--first_batch] [--init_checkpoint=PATH] [--variant=NAME:SPEC ...] [--json=FILE]

A variant is a name and what it changes, `;`-separated: `env:NAME=VALUE` sets an environment
variable while that variant's model is built and run, `noise:SIGMA[/SEED]` adds Gaussian noise
of that standard deviation to the batch's images (drawn with SEED, default 1), anything else is
a config override, e.g. `--variant=keras_bn:model.fused_batch_norm=false`. Default variants: `float64` (the reference:
variables and computation in float64, Keras' batch norm, tuning off), `tuned` (nothing changed:
the speed choices picked from the tuning cache, as users train), `tuned_noise` (the same with
noise of 1e-6 on the images: the spread rounding alone gives, see below), `fixed`
(`DEEPLAB_TF_AUTOTUNE=0`: the fixed rules) and `keras_bn` (Keras' batch norm ops instead of the
fused kernel, tuning off).

Each variant builds the experiment's model (`deeplab_tf.assembly.assemble`) with seed 0 and
freezes batch norm where the experiment does; the first restores `--init_checkpoint` as
fine-tuning does (`train.init_checkpoint` by default), the others take the first's weights (so
a float64 variant, `train.mixed_precision=float64`, is a reference from the same start). Each
computes on one fixed batch (uniform random normalised images, uniform random labels; with
`--first_batch` the experiment's first training batch, from its data pipeline, whose batch size and
crop replace --batch and --size) the
trainer's loss on one replica: masked cross-entropy of every supervised output plus L2 weight
decay (written again here: the trainer's step is built inside `trainer._distributed_step`). Printed
per variant against the first: the loss difference, and per trainable variable
max |g - g_first| / max |g_first| (the error relative to that gradient's largest element): the
largest over variables and its name, and the median.

The step's gradient is not a continuous function of rounding: a change in the last bits can
move a pre-activation across a ReLU or ReLU6 boundary, and that pixel's contribution appears or
disappears. On `camvid_mnv2_voc_transfer` from the VOC weights (1x97x97, AMD EPYC,
BENCHMARKS.md "Why the third run collapsed"), four draws of noise of 1e-6 on the images
(`noise:1e-6/0` to `/3`) moved the gradients by 6.1e-4, 3.2e-3, 2.8e-6 and 1.1e-3 (largest over
variables) of the same variant, while float64 and the float32 step agreed to 1.8e-6. So one
variant's larger error is a flip, not an inexact computation, when noise variants of the
reference show errors of the same size.
"""

import argparse
import contextlib
import json
import os
import statistics

from bench import provenance

DEFAULT_VARIANTS = ("float64:train.mixed_precision=float64;model.fused_batch_norm=false;env:DEEPLAB_TF_AUTOTUNE=0",
                    "tuned:", "tuned_noise:noise:1e-6", "fixed:env:DEEPLAB_TF_AUTOTUNE=0",
                    "keras_bn:model.fused_batch_norm=false;env:DEEPLAB_TF_AUTOTUNE=0")


def parse_variant(text: str) -> tuple[str, dict, list[str], tuple[float, int]]:
    """Returns (name, {env name: value}, [config overrides], (image noise standard deviation,
    its seed)) of "NAME:SPEC" (module docstring).
    Raises ValueError for a variant without a name."""
    name, _, spec = text.partition(":")
    if not name:
        raise ValueError(f"--variant={text!r}: expected NAME:SPEC, e.g. keras_bn:model.fused_batch_norm=false")
    env, overrides, noise = {}, [], (0.0, 1)
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if part.startswith("env:"):
            key, _, value = part[4:].partition("=")
            env[key] = value
        elif part.startswith("noise:"):
            sigma, _, seed = part[6:].partition("/")
            noise = (float(sigma), int(seed or 1))
        else:
            overrides.append(part)
    return name, env, overrides, noise


@contextlib.contextmanager
def environment(values: dict):
    """Sets the environment variables `values` inside the block, restoring the previous ones."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def step_gradients(experiment, batch: int, size: int, init_checkpoint: str, weights: dict | None = None,
                   noise: tuple[float, int] = (0.0, 1), first_batch: bool = False,
                   log=print) -> tuple[float, dict, dict]:
    """Returns (the trainer's loss on the fixed batch: float, {trainable variable path: float64
    numpy gradient}, {variable path: numpy value before the step}) for `experiment`'s model built
    with seed 0 and initialised from `init_checkpoint` (module docstring), or, when `weights`
    ({path: value}, another variant's third return) is given, with those values instead (so a
    variant of another dtype policy starts from the same weights). `noise` (standard deviation,
    seed) adds Gaussian noise to the images. With `first_batch` the batch is the experiment's
    first training batch (`batch` and `size` unused)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from deeplab_tf.assembly import assemble
    from deeplab_tf.training import checkpoints
    from deeplab_tf.training.losses import l2_weight_decay, masked_sparse_cross_entropy
    from deeplab_tf.training.trainer import freeze_batch_norm

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    parts = assemble(experiment, dtype_policy=experiment.train.mixed_precision or "float32", with_data=first_batch)
    model = parts.model
    if not experiment.train.train_batch_norm:
        freeze_batch_norm(model)
    if weights is not None:
        if weights.keys() != {v.path for v in model.weights}:
            raise ValueError(f"the variants' models differ: {sorted(weights.keys() ^ {v.path for v in model.weights})[:5]}")
        for variable in model.weights:
            variable.assign(weights[variable.path].astype(variable.dtype))
    elif init_checkpoint:
        checkpoints.restore_model(model, init_checkpoint, log=log, partial=True)
    initial = {v.path: v.numpy() for v in model.weights}
    rng = np.random.default_rng(0)
    if first_batch:
        from deeplab_tf.data.pipeline import build_train_dataset

        pixels, labels = next(iter(build_train_dataset(experiment.data, experiment.train.batch_size,
                                                       parts.normalize, seed=experiment.train.seed)))
        pixels = pixels.numpy()
    else:
        pixels = rng.uniform(-1, 1, (batch, size, size, 3))
        labels = tf.constant(rng.integers(0, parts.info.num_classes, (batch, size, size)).astype("int32"))
    images = tf.constant((pixels + noise[0] * np.random.default_rng(noise[1]).normal(size=pixels.shape)).astype("float32"))

    @tf.function
    def compute():
        with tf.GradientTape() as tape:
            outputs = tf.nest.flatten(parts.training_model(images, training=True))
            loss = tf.add_n([masked_sparse_cross_entropy(labels, o, parts.info.ignore_label) for o in outputs])
            total = loss + l2_weight_decay(model, experiment.train.weight_decay)
        return total, tape.gradient(total, model.trainable_variables)

    total, gradients = compute()
    return float(total), {v.path: g.numpy().astype("float64") for v, g in zip(model.trainable_variables, gradients)}, initial


def compare(reference: dict, other: dict) -> dict:
    """Returns {"max": largest relative error, "max_variable": its path, "median": median
    relative error} of `other`'s gradients against `reference`'s, each variable's error being
    max |g - g_ref| / max |g_ref|. Raises ValueError when the variables differ."""
    import numpy as np

    if reference.keys() != other.keys():
        raise ValueError(f"the variants train different variables: {sorted(reference.keys() ^ other.keys())[:5]}")
    errors = {path: float(np.max(np.abs(other[path] - g)) / max(float(np.max(np.abs(g))), 1e-30))
              for path, g in reference.items()}
    worst = max(errors, key=errors.get)
    return {"max": errors[worst], "max_variable": worst, "median": statistics.median(errors.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=321)
    parser.add_argument("--first_batch", action="store_true",
                        help="the experiment's first training batch instead of random images and labels")
    parser.add_argument("--init_checkpoint", default=None, help="default: the experiment's train.init_checkpoint")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--override", action="append", default=[], help="config overrides for every variant")
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    from deeplab_tf.config import apply_overrides
    from experiments.registry import get_experiment

    print(provenance.describe(), flush=True)
    variants = [parse_variant(text) for text in (args.variant or DEFAULT_VARIANTS)]
    results, reference = [], None
    for name, env, overrides, noise in variants:
        experiment = apply_overrides(get_experiment(args.experiment), [*args.override, *overrides])
        init = experiment.train.init_checkpoint if args.init_checkpoint is None else args.init_checkpoint
        with environment(env):
            loss, gradients, weights = step_gradients(experiment, args.batch, args.size, init,
                                                      weights=reference[3] if reference else None, noise=noise,
                                                      first_batch=args.first_batch)
        row = {"variant": name, "env": env, "overrides": overrides, "noise": list(noise), "loss": loss}
        if reference is None:
            reference = (name, loss, gradients, weights)
            print(f"{name}: loss {loss:.6f} ({len(gradients)} gradients)", flush=True)
        else:
            row.update(compare(reference[2], gradients), loss_difference=loss - reference[1])
            print(f"{name} against {reference[0]}: loss {loss:.6f} (difference {row['loss_difference']:+.2e}); "
                  f"gradient error relative to each gradient's largest element: largest {row['max']:.2e} "
                  f"({row['max_variable']}), median {row['median']:.2e}", flush=True)
        results.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"provenance": provenance.record(), "experiment": args.experiment, "batch": args.batch,
                       "size": args.size, "first_batch": args.first_batch, "variants": results}, f, indent=1)


if __name__ == "__main__":
    main()
