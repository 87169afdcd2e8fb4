"""Exports a trained experiment as a SavedModel for TF Serving.

    python -m export.export_saved_model --experiment=demo --checkpoint=runs/demo \
        --export_dir=runs/demo/export [--overwrite]

The model is built from the same experiment config as training and restored from the checkpoint,
so export cannot disagree with training. Beside the model, `assets.extra/dataset_info.json` holds
the class names and palette that `deeplab_tf.predict` uses for overlays.
"""

import json
import os
import shutil
import tempfile

from absl import flags

from deeplab_tf.cli import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, or a model dir (its latest checkpoint).")
flags.DEFINE_string("export_dir", None, "Folder to write the SavedModel into (must not exist).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.")
flags.mark_flags_as_required(["checkpoint", "export_dir"])

DATASET_INFO_FILE = os.path.join("assets.extra", "dataset_info.json")


def export_saved_model(experiment, checkpoint: str, export_dir: str, overwrite: bool = False, log=print) -> str:
    """Writes the SavedModel of `experiment` restored from `checkpoint` to `export_dir`.

    The export is written to a temporary folder beside `export_dir` and moved into place, so a
    failed export never leaves a half-written model. Returns the checkpoint prefix used. Raises
    FileExistsError if `export_dir` exists and `overwrite` is False.
    """
    from deeplab_tf.assembly import assemble
    from deeplab_tf.checkpoints import restore_model
    from export.serving import build_export_archive

    export_dir = os.path.abspath(export_dir)
    if os.path.exists(export_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} exists; pass --overwrite to replace it")
    parts = assemble(experiment)
    prefix = restore_model(parts.model, checkpoint)
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        build_export_archive(parts.model, parts.normalize).write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        with open(os.path.join(staging, DATASET_INFO_FILE), "w") as f:
            json.dump(
                {
                    "experiment": experiment.name,
                    "checkpoint": prefix,
                    "class_names": list(parts.info.class_names),
                    "palette": [list(c) for c in parts.info.palette],
                    "ignore_label": parts.info.ignore_label,
                },
                f,
                indent=2,
            )
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"Exported {experiment.name} from {prefix} to {export_dir}")
    return prefix


def main(argv):
    del argv
    values = flags.FLAGS
    export_saved_model(resolve_experiment(), values.checkpoint, values.export_dir, values.overwrite)


if __name__ == "__main__":
    run(main)
