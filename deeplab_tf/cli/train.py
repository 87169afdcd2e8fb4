"""Trains a named experiment, on one device or many.

    python -m deeplab_tf.cli.train --experiment=demo --model_dir=runs/demo \\
        [--override=train.steps=200,data.crop_size=321] [--strategy=mirrored] \\
        [--mixed_precision=auto|mixed_bfloat16|mixed_float16] [--jit_compile] [--deterministic]

Rerunning the same command resumes from the latest checkpoint in `model_dir`, continuing the
input where it stopped. The experiment's batch size is the global batch, split over replicas.
Several workers: run the same command on each with `--strategy=multi_worker_mirrored` and the
`TF_CONFIG` environment variable describing the cluster; `model_dir` must be storage they share.
On SIGTERM (preemption) the step in progress is finished and checkpointed, and the command exits
with status 143 (128 + SIGTERM); rerun it to resume.

`--mixed_precision=auto` trains in bfloat16 (mixed_bfloat16) on a CPU with native bfloat16 units
(AVX512_BF16, AMX-BF16) and in float32 elsewhere, and always in float32 with --deterministic; the
choice is logged and config.json records it (`deeplab_tf.training.trainer.resolve_precision`).
Unset, the experiment's train.mixed_precision holds ("": float32, for every shipped experiment).
bfloat16 speeds up the convolutions, not every model's step: measure yours (BENCHMARKS.md).
"""

import sys


from absl import flags

from deeplab_tf.cli.flags import define_experiment_flags, refuse_flag_unless, resolve_experiment, run
from deeplab_tf.config import apply_overrides
from deeplab_tf.training.distribute import STRATEGIES

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Folder for the config, checkpoints and TensorBoard events.")
flags.mark_flag_as_required("model_dir")
flags.DEFINE_enum(
    "strategy", "auto", STRATEGIES,
    "tf.distribute strategy; auto = mirrored with more than one GPU, else one device.",
)
flags.DEFINE_string("tpu", "", "With --strategy=tpu: the TPU's address or name ('' = local TPU).")
refuse_flag_unless("tpu", lambda values: values.strategy == "tpu",
                   "a TPU is used only with --strategy=tpu: add --strategy=tpu or drop --tpu")
flags.DEFINE_enum(
    "mixed_precision", None, ["auto", "mixed_float16", "mixed_bfloat16"],
    "Mixed precision policy (sets train.mixed_precision); the loss stays float32. auto = mixed_bfloat16 "
    "on a CPU with native bfloat16 units (AVX512_BF16, AMX-BF16), else float32 (always float32 with "
    "--deterministic); the choice is logged and recorded in config.json. Unset: the experiment's (float32).",
)
flags.DEFINE_boolean("jit_compile", False, "Compile the training step with XLA (sets train.jit_compile).")
flags.DEFINE_boolean(
    "deterministic", False, "Enable TensorFlow op determinism: reruns give identical weights (sets train.deterministic)."
)


def main(argv):
    del argv
    from deeplab_tf.training.distribute import create_strategy
    from deeplab_tf.training.resume import Preempted
    from deeplab_tf.training.trainer import train

    values = flags.FLAGS
    # First: a multi-worker strategy must exist before TensorFlow runs any op.
    strategy = create_strategy(values.strategy, values.tpu)
    overrides = [f"train.mixed_precision={values.mixed_precision}"] if values.mixed_precision else []
    overrides += [f"train.{name}=true" for name in ("jit_compile", "deterministic") if values[name].value]
    try:
        train(apply_overrides(resolve_experiment(), overrides), values.model_dir, strategy=strategy)
    except Preempted as preempted:  # the trainer has logged the step and the checkpoint
        sys.stdout.flush()
        sys.exit(preempted.exit_code)


if __name__ == "__main__":
    run(main)
