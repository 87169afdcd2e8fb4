"""Writes a trained model's weights as one compact file, the form deeplab-tf ships models in.

    python -m deeplab_tf.cli.save_weights --experiment=camvid_mnv2_voc_transfer \\
        --checkpoint=runs/camvid_transfer --output=weights/camvid_mnv2_voc_transfer.npz [--dtype=float16]

The model of --experiment (with its --override's) is restored from --checkpoint (a training
checkpoint, model dir, published model or weights file) and written by
`deeplab_tf.models.weights_file.save_weights_file`. When --checkpoint is a training run (its
model dir or one of its checkpoints), the run's config.json gives the experiment and its
overrides. The file's size and sha256 are printed for the zoo's registry. An existing --output is
never overwritten. `evaluate` and `export` take the file as `--checkpoint=FILE`.
"""

import os

from absl import flags

from deeplab_tf.cli.flags import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, model dir or weights file to read.")
flags.DEFINE_string("output", None, "The new weights file (*.npz).")
flags.DEFINE_enum("dtype", "float16", ["float16", "float32"], "Storage dtype of the weights.")
flags.mark_flags_as_required(["checkpoint", "output"])


def main(argv):
    del argv
    from deeplab_tf.assembly import assemble
    from deeplab_tf.models.weights_file import save_weights_file
    from deeplab_tf.pretrained.zoo import file_sha256
    from deeplab_tf.training.checkpoints import restore_model

    values = flags.FLAGS
    experiment = resolve_experiment(values.checkpoint)
    model = assemble(experiment, with_data=False).model
    source = restore_model(model, values.checkpoint, log=print)
    path = save_weights_file(model, values.output, values.dtype)
    print(f"Wrote {path} from {source}: {model.count_params():,} parameters as {values.dtype}, "
          f"{os.path.getsize(path):,} bytes, sha256 {file_sha256(path)}")


if __name__ == "__main__":
    run(main)
