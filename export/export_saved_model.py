"""Exports a trained experiment as a SavedModel for TF Serving.

    python -m export.export_saved_model --experiment=demo --checkpoint=runs/demo \
        --export_dir=runs/demo/export [--input_type=image_bytes,image_tensor,tf_example] \
        [--batch_size=N] [--input_size=HxW] [--output_stride=8] [--scales=0.75,1,1.25] [--flip] [--fusion=max] \
        [--crf [--crf_params=PATH]] [--outputs=labels,probabilities] [--max_pixels=N] [--overwrite] \
        [--nofold_batch_norm] [--precision=bfloat16|auto]

The model is built from the same experiment config as training (at --output_stride if given, with
the same weights) and restored from the checkpoint, so export cannot disagree with training. A
training run's --checkpoint (its model dir, or a checkpoint in it) brings its experiment from its
config.json: --experiment and the training's --override's need not be repeated. By
default every batch norm directly after a convolution is folded into it
(`deeplab_tf.models.fold_batch_norm`: the same inference function, fewer ops); `--nofold_batch_norm`
exports the layers as trained. `--precision=bfloat16` computes the model in bfloat16 (Keras'
"mixed_bfloat16" policy: the float32 weights cast per layer, softmax and outputs in float32); on
CPUs with bfloat16 instructions (AVX512_BF16, AMX) it serves faster (BENCHMARKS.md), with
probabilities a few 1e-2 from float32's at most. `--precision=auto` takes bfloat16 where the
CPU running the export has native bfloat16 units (`deeplab_tf.cpu.native_bfloat16`), float32
elsewhere: export on (a CPU like) the one that will serve. The default stays float32. The
signatures are described in `export/serving.py`; `serving_default` is the first --input_type.
Beside the model, `signatures.txt` holds what `saved_model_cli show --all` prints, and
`assets.extra/dataset_info.json` the class names and palette (used by `deeplab_tf.cli.predict`),
the serving options, how many batch norms were folded and the precision (`precision`;
`precision_requested` and `precision_reason` say how it was chosen).
`deeplab_tf_export.json`, written last, marks the folder as an export and lists its files:
`--overwrite` replaces only such a folder, holding nothing else (export/README.md).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl import flags

from deeplab_tf import cpu
from deeplab_tf.cli.flags import define_experiment_flags, refuse_flag_unless, resolve_experiment, run
from deeplab_tf.config import EvalConfig
from export.file_modes import give_umask_mode
from export.serving import INPUT_TYPES, MAX_PIXELS, OUTPUTS, ServingOptions

# --precision -> the Keras dtype policy the model is built with.
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
# --precision: those, or "auto" (`resolve_precision`: bfloat16 on CPUs with native bfloat16 units).
PRECISIONS = (*PRECISION_POLICIES, "auto")

define_experiment_flags()
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix, or a model dir (its latest checkpoint).")
flags.DEFINE_string("export_dir", None, "Folder to write the SavedModel into (must not exist, unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir that this exporter wrote (never another folder).")
flags.DEFINE_list("input_type", ["image_bytes", "image_tensor"], f"Signatures, first = serving_default: {INPUT_TYPES}.")
flags.DEFINE_integer("batch_size", None, "Fixed batch size of the signatures; unset = dynamic.")
flags.DEFINE_string("input_size", "", "HxW: run the model at this size (image_tensor takes exactly it); unset = any size.")
flags.DEFINE_integer("output_stride", 0, "Rebuild the model at this output stride (same weights); 0 = the "
                     "experiment's eval.output_stride (0 there: the training stride).")
flags.DEFINE_list("scales", ["1.0"], "Test-time scales whose probabilities are fused in the graph.")
flags.DEFINE_bool("flip", False, "Also fuse left-right flipped inputs in the graph.")
flags.DEFINE_enum("fusion", None, ["mean", "max"], "Fusion of the test-time passes; unset = the experiment's eval.fusion.")
flags.DEFINE_bool("crf", False, "Refine with the dense CRF (TensorFlow backend) inside the graph.")
flags.DEFINE_string("crf_params", "", "CRF parameter file; unset = CHECKPOINT/crf_params.json if present, else DeepLab's defaults.")
flags.DEFINE_list("outputs", [], f"Outputs of every signature from {OUTPUTS}; unset = per-signature defaults.")
flags.DEFINE_integer("max_pixels", MAX_PIXELS, "Most pixels one request may hold (images x computed height x width; "
                     "encoded images: read from their headers before decoding), checked in the graph.")
flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Compute precision of the exported model; auto = "
                  "bfloat16 if this CPU has native bfloat16 units (AVX512_BF16, AMX-BF16), else float32.")
flags.DEFINE_bool("fold_batch_norm", True, "Fold batch norms into the convolutions before them (same outputs, fewer ops and variables).")
flags.mark_flags_as_required(["checkpoint", "export_dir"])
refuse_flag_unless("crf_params", lambda values: values.crf,
                   "the CRF parameters are read only with --crf, and there is no --crf: add --crf or drop --crf_params")
refuse_flag_unless("fusion", lambda values: len(values.scales) > 1 or values.flip,
                   "one pass is exported (one --scales, no --flip), so nothing is fused: give several --scales "
                   "or --flip too, or drop --fusion")

DATASET_INFO_FILE = os.path.join("assets.extra", "dataset_info.json")
SIGNATURES_FILE = "signatures.txt"
# Written last into every export, listing its files: --overwrite replaces only such a folder.
EXPORT_MARKER = "deeplab_tf_export.json"


def export_saved_model(
    experiment,
    checkpoint: str,
    export_dir: str,
    overwrite: bool = False,
    options: ServingOptions = ServingOptions(),
    output_stride: int = 0,
    log=print,
    fold_batch_norm: bool = True,
    precision: str = "float32",
) -> str:
    """Writes the SavedModel of `experiment` restored from `checkpoint` to `export_dir`.

    `options` choose the signatures (see `export.serving`); `output_stride` > 0 rebuilds the
    model at that stride with the same weights. `fold_batch_norm` merges every batch norm that
    directly follows a convolution into it (`deeplab_tf.models.fold_batch_norm`). `precision` is one of
    `PRECISIONS` ("float32", "bfloat16" or "auto", resolved and logged by `resolve_precision`). The export is written
    to a temporary folder beside `export_dir` and moved into place, so a failed export never
    leaves a half-written model. Returns the checkpoint prefix used. Raises ValueError for an empty
    `export_dir`, OSError when no folder can be made beside it (`_staging_folder`), before the
    model is built, and FileExistsError if `export_dir` exists and
    `overwrite` is False, or is anything but an earlier export (`check_replaceable`: never a
    model dir, the checkpoint's folder or a parent of it, a folder without `EXPORT_MARKER` or
    holding files the marker does not list).
    """
    from export.inference_model import build_inference_model
    from export.serving import build_export_archive

    requested = precision
    precision, reason = resolve_precision(requested)
    if requested == "auto":
        log(f"--precision=auto: {precision} ({reason})")
    if not export_dir:
        raise ValueError("--export_dir is empty: give the folder to write the SavedModel into")
    export_dir = os.path.abspath(export_dir)
    check_replaceable(export_dir, [checkpoint], overwrite)
    staging = _staging_folder(export_dir)
    try:
        parts = build_inference_model(experiment, checkpoint, output_stride, PRECISION_POLICIES[precision],
                                      fold_batch_norm, log)
        model, prefix, folded_count = parts.model, parts.checkpoint, parts.batch_norms_folded
        build_export_archive(model, parts.normalize, options).write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, "assets.extra"), exist_ok=True)
        info = {
            "experiment": experiment.name,
            "checkpoint": prefix,
            "output_stride": output_stride or experiment.model.output_stride,
            "class_names": list(parts.info.class_names),
            "palette": [list(c) for c in parts.info.palette],
            "ignore_label": parts.info.ignore_label,
            "serving": options.describe(),
            "fold_batch_norm": fold_batch_norm,
            "batch_norms_folded": folded_count,
            "precision": precision,
            "precision_requested": requested,
            "precision_reason": reason,
        }
        with open(os.path.join(staging, DATASET_INFO_FILE), "w") as f:
            json.dump(info, f, indent=2)
        with open(os.path.join(staging, SIGNATURES_FILE), "w") as f:
            f.write(show_all(staging))
        _write_marker(staging)
        check_replaceable(export_dir, [checkpoint, prefix], overwrite)
        _move_into_place(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"Exported {experiment.name} from {prefix} to {export_dir}")
    return prefix


def _staging_folder(export_dir: str) -> str:
    """Returns a new empty folder beside `export_dir` (its parents made), with the mode the umask
    gives a new folder (`give_umask_mode`), for the export to be written into and renamed from.
    Raises OSError naming `export_dir` when it cannot be made, before any model is built."""
    parent = os.path.dirname(export_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    except OSError as error:
        raise OSError(f"cannot write --export_dir {export_dir}: no folder can be made in {parent} "
                      f"({error.strerror or error})") from None
    give_umask_mode(staging)
    return staging


def resolve_precision(precision: str) -> tuple[str, str]:
    """Returns (the precision of `PRECISION_POLICIES` that `precision` means on this machine,
    why): "auto" is "bfloat16" on a CPU with native bfloat16 units (`deeplab_tf.cpu`), else
    "float32"; the others are themselves ("requested"). Raises ValueError for a precision not
    in `PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; known: {list(PRECISIONS)}")
    if precision != "auto":
        return precision, "requested"
    native, reason = cpu.native_bfloat16()
    return ("bfloat16" if native else "float32"), reason


def check_replaceable(export_dir: str, sources: list[str], overwrite: bool) -> None:
    """Returns when `export_dir` does not exist, or is an export this exporter wrote and
    `overwrite` is True. Otherwise raises FileExistsError, in one line, saying why it is kept."""
    if not os.path.lexists(export_dir):
        return
    reason = _why_not_replaceable(export_dir, sources)
    if reason:
        raise FileExistsError(f"--export_dir {export_dir} is not replaced: {reason}")
    if not overwrite:
        raise FileExistsError(f"{export_dir} exists; pass --overwrite to replace it")


def _why_not_replaceable(export_dir: str, sources: list[str]) -> str | None:
    """Returns why the existing `export_dir` must not be replaced, or None when it is a folder this
    exporter wrote (`EXPORT_MARKER`) holding no other file and none of `sources` (the checkpoint
    given and used: a path inside `export_dir` or `export_dir` itself)."""
    from deeplab_tf.training.checkpoints import CHECKPOINT_SUBDIR
    from deeplab_tf.training.resume import LOCK_FILE, STATE_FILE
    from deeplab_tf.training.trainer import CONFIG_FILE

    if os.path.islink(export_dir):
        return f"it is a symbolic link (to {os.readlink(export_dir)})"
    folder = os.path.realpath(export_dir)
    for source in sources:
        if os.path.lexists(source) or os.path.exists(source + ".index"):
            if os.path.commonpath([os.path.realpath(source), folder]) == folder:
                return f"it holds the checkpoint {source}"
    if not os.path.isdir(folder):
        return "it is not a folder"
    training = [name for name in (CONFIG_FILE, CHECKPOINT_SUBDIR, STATE_FILE, LOCK_FILE)
                if os.path.lexists(os.path.join(folder, name))]
    if training:
        return f"it holds a training run's files ({', '.join(training)})"
    written = _marker_files(os.path.join(folder, EXPORT_MARKER))
    if written is None:
        return f"it has no readable {EXPORT_MARKER}, so this exporter did not write it"
    foreign = sorted(_files_under(folder) - written - {EXPORT_MARKER})
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        return f"it holds files this exporter did not write: {', '.join(foreign[:5])}{more}"
    return None


def _marker_files(marker: str) -> set[str] | None:
    """Returns the files the export marker `marker` lists, or None when it is missing or unreadable."""
    try:
        with open(marker) as f:
            return set(json.load(f)["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _files_under(folder: str) -> set[str]:
    """Returns the paths, relative to `folder`, of every file, symbolic link and empty folder under it."""
    found = set()
    for root, dirs, files in os.walk(folder):
        relative = os.path.relpath(root, folder)
        links = [name for name in dirs if os.path.islink(os.path.join(root, name))]
        if not dirs and not files and relative != ".":
            found.add(relative)
        found.update(os.path.normpath(os.path.join(relative, name)) for name in files + links)
    return found


def _write_marker(folder: str) -> None:
    """Writes `EXPORT_MARKER` into the export `folder`: what wrote it and the files it holds."""
    listing = {"written_by": "export.export_saved_model", "files": sorted(_files_under(folder))}
    with open(os.path.join(folder, EXPORT_MARKER), "w") as f:
        json.dump(listing, f, indent=1)


def _move_into_place(staging: str, export_dir: str) -> None:
    """Renames the finished export `staging` to `export_dir`. A previous export there is renamed
    aside first and deleted only once the new one is in place (and put back if that fails)."""
    if not os.path.lexists(export_dir):
        os.replace(staging, export_dir)
        return
    previous = staging + "-previous"
    os.replace(export_dir, previous)
    try:
        os.replace(staging, export_dir)
    except OSError:
        os.replace(previous, export_dir)
        raise
    shutil.rmtree(previous)


def show_all(saved_model_dir: str) -> str:
    """Returns what `saved_model_cli show --all --dir saved_model_dir` prints (run in a child
    process: the tool defines absl flags that clash with ours)."""
    command = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir", saved_model_dir]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout


def serving_options(values, evaluation: EvalConfig = EvalConfig()) -> ServingOptions:
    """Returns the `ServingOptions` of the parsed flags; ValueError naming a malformed flag.
    The passes are fused by --fusion, else as the experiment's `evaluation.fusion`, and images
    padded as its `evaluation.pad_to_size` / `pad_value`, so an export computes what `evaluate`
    does."""
    from export.inference_model import parse_input_size

    input_size = parse_input_size(values.input_size)
    try:
        scales = tuple(float(scale) for scale in values.scales)
    except ValueError:
        raise ValueError(f"--scales={','.join(values.scales)!r} is not a list of numbers, e.g. 0.75,1,1.25") from None
    crf = None
    if values.crf:
        from deeplab_tf.crf import PARAMS_FILE, DenseCRFParams, load_params

        path = values.crf_params or os.path.join(values.checkpoint, PARAMS_FILE)
        crf = load_params(path) if values.crf_params or os.path.isfile(path) else DenseCRFParams()
    return ServingOptions(
        input_types=tuple(values.input_type),
        outputs=tuple(values.outputs),
        batch_size=values.batch_size,
        input_size=input_size,
        scales=scales,
        flip=values.flip,
        fusion=values.fusion or evaluation.fusion,
        pad_to_size=evaluation.pad_to_size,
        pad_value=evaluation.pad_value,
        crf=crf,
        max_pixels=values.max_pixels,
    )


def main(argv):
    del argv
    values = flags.FLAGS
    experiment = resolve_experiment(values.checkpoint)
    options = serving_options(values, experiment.eval)
    export_saved_model(experiment, values.checkpoint, values.export_dir, values.overwrite, options,
                       values.output_stride or experiment.eval.output_stride,
                       fold_batch_norm=values.fold_batch_norm, precision=values.precision)


if __name__ == "__main__":
    run(main)
