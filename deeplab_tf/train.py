"""Trains a named experiment.

    python -m deeplab_tf.train --experiment=demo --model_dir=runs/demo \
        [--override=train.steps=200,data.crop_size=321]

Rerunning the same command resumes from the latest checkpoint in `model_dir`.
"""

from absl import flags

from deeplab_tf.cli import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Folder for the config, checkpoints and TensorBoard events.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from deeplab_tf.trainer import train

    train(resolve_experiment(), flags.FLAGS.model_dir)


if __name__ == "__main__":
    run(main)
