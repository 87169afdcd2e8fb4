"""Exports a trained experiment as a LiteRT (TFLite) model for on-device inference.

    python -m export.export_tflite --experiment=camvid_mnv2_voc_transfer --checkpoint=camvid_mnv2_voc_transfer \
        --output=camvid.tflite --input_size=360x480 [--precision=float32|float16|dynamic_range|int8] \
        [--calibration_images=100] [--outputs=labels,probabilities,logits] [--output_stride=8] [--noper_channel] \
        [--overwrite]

The model is the SavedModel exporter's (`export.inference_model.build_inference_model`: the
experiment's model at --output_stride, or its eval.output_stride, restored from --checkpoint, batch
norms folded), built with native dilated convolutions (`model.atrous_implementation=native`: each
atrous convolution becomes one dilated CONV_2D / DEPTHWISE_CONV_2D, never a SpaceToBatchND /
BatchToSpaceND pair). The file takes `images` uint8 [1, H, W, 3] at the one --input_size, with the
normalisation (and the experiment's eval.pad_to_size padding) inside, and returns at that size
`labels` int32 [1, H, W] (argmax of the logits), `probabilities` float32 [1, H, W, C] and/or
`logits` float32 [1, H, W, C] (default: labels, probabilities). Single scale, no flip, no CRF.

Precisions: `float32`; `float16` (weights stored in float16, computed in float32); `dynamic_range`
(int8 weights, float activations); `int8` (int8 weights and activations, calibrated on
--calibration_images images of the experiment's training split, resized to --input_size; the
uint8 input, the normalisation and the float outputs stay as they are). Quantised kernels get one
scale per output channel, or, with --noper_channel, one per tensor.

Only builtin TFLite operators are written: a model that would need TensorFlow (Flex / Select)
ops is refused, naming them, as is a converted model holding SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND
or a custom op. An --input_size the model cannot serve at its output stride is refused before
anything is built. The file carries its description (experiment, classes, palette, precision)
as flatbuffer metadata (`deeplab_tf.pretrained.tflite_file.read_export_metadata`); beside it,
`NAME.signatures.txt` lists its input and outputs (tensor names, shapes, dtypes, quantisation)
and its operators. An existing --output is replaced only with --overwrite, and only when it is a
.tflite this exporter wrote (export/README.md). Run it with
`deeplab_tf.cli.evaluate --tflite=FILE` / `deeplab_tf.cli.predict --tflite=FILE`.
"""

import collections
import dataclasses
import os
import re
import shutil
import tempfile

from absl import flags

from deeplab_tf.cli.flags import check_output_dir, define_experiment_flags, refuse_flag_unless, resolve_experiment, run
from deeplab_tf.evaluation.tflite_segmenter import INPUT_NAME, OUTPUTS, SIGNATURE
from export.file_modes import give_umask_mode

PRECISIONS = ("float32", "float16", "dynamic_range", "int8")
DEFAULT_OUTPUTS = ("labels", "probabilities")
DEFAULT_CALIBRATION_IMAGES = 100
REFUSED_OPS = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
"""Operators an atrous convolution must not become: it is exported as one dilated convolution."""
DESCRIPTION_HEADER = "# deeplab_tf export.export_tflite:"


def define_flags() -> None:
    """Defines the command's flags (only when run as a command: the module's functions are
    importable beside other entry points, whose flags share names)."""
    define_experiment_flags()
    flags.DEFINE_string("checkpoint", None, "A run dir, checkpoint prefix, weights file, zoo name or published model.")
    flags.DEFINE_string("output", None, "The .tflite file to write (must not exist, unless --overwrite).")
    flags.DEFINE_string("input_size", None, "HxW: the one input size of the model, e.g. 360x480.")
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "float32, float16 weights, dynamic_range (int8 "
                      "weights) or int8 (weights and activations, calibrated).")
    flags.DEFINE_integer("calibration_images", DEFAULT_CALIBRATION_IMAGES,
                         "int8: calibrate on this many images of the training split.", lower_bound=1)
    flags.DEFINE_list("outputs", list(DEFAULT_OUTPUTS), f"Outputs of the model from {OUTPUTS}.")
    flags.DEFINE_integer("output_stride", 0, "Rebuild the model at this output stride (same weights); 0 = the "
                         "experiment's eval.output_stride (0 there: the training stride).")
    flags.DEFINE_bool("per_channel", True, "int8 / dynamic_range: one quantisation scale per output channel of each "
                      "kernel (--noper_channel: one per tensor, smaller file, usually less accurate).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output that this exporter wrote (never another file).")
    flags.mark_flags_as_required(["checkpoint", "output", "input_size"])
    refuse_flag_unless("calibration_images", lambda values: values.precision == "int8",
                       "only --precision=int8 is calibrated: add --precision=int8 or drop --calibration_images")
    refuse_flag_unless("per_channel", lambda values: values.precision in ("int8", "dynamic_range"),
                       "only --precision=int8 or dynamic_range quantises kernels: give one of them or drop "
                       "--[no]per_channel")


def description_path(output: str) -> str:
    """Returns the description file beside the .tflite `output`: NAME.tflite -> NAME.signatures.txt."""
    return output[: -len(".tflite")] + ".signatures.txt"


def export_tflite(experiment, checkpoint: str, output: str, input_size, precision: str = "float32",
                  outputs=DEFAULT_OUTPUTS, calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
                  output_stride: int = 0, overwrite: bool = False, log=print, per_channel: bool = True) -> dict:
    """Writes the TFLite model of `experiment` restored from `checkpoint` to `output` (module
    docstring) and its description beside it. Returns the description stored in the file.

    `input_size` (height, width) is the model's one input size; `output_stride` > 0 rebuilds the
    model at that stride. `per_channel` False quantises each kernel with one scale (int8,
    dynamic_range). Raises ValueError (one line) for a bad precision, output name or size,
    an empty or unreadable calibration set, or a model needing operators that are not TFLite
    builtins; FileExistsError when `output` exists and is not replaced (`check_replaceable`),
    OSError when its folder cannot be made or written (`check_output_dir`, before the model is
    built). Nothing, not even that folder, is made unless the whole export succeeds.
    """
    from export.inference_model import build_inference_model

    output = os.path.abspath(output)
    outputs = tuple(outputs)
    if precision not in PRECISIONS:
        raise ValueError(f"--precision={precision!r}; known: {', '.join(PRECISIONS)}")
    unknown = [name for name in outputs if name not in OUTPUTS]
    if not outputs or unknown or len(set(outputs)) != len(outputs):
        raise ValueError(f"--outputs={','.join(outputs)!r}: give distinct names from {', '.join(OUTPUTS)}")
    stride = output_stride or experiment.model.output_stride
    check_input_size(input_size, stride, experiment.eval.pad_to_size)
    check_replaceable(output, overwrite)
    check_output_dir(os.path.dirname(output), "the folder of --output")  # before the slow conversion; made by
    # `write_checked`, so a failed export leaves no new folder
    calibration = calibration_set(experiment, input_size, calibration_images) if precision == "int8" else None
    experiment = dataclasses.replace(experiment, model=dataclasses.replace(
        experiment.model, atrous_implementation="native", fused_batch_norm=False))
    built = build_inference_model(experiment, checkpoint, output_stride, log=log)
    if tuple(experiment.eval.scales) != (1.0,) or experiment.eval.flip:
        log(f"Single scale, no flip: the experiment's eval.scales={experiment.eval.scales}, "
            f"eval.flip={experiment.eval.flip} are not exported")
    function = inference_function(built.model, built.normalize, input_size, outputs,
                                  experiment.eval.pad_to_size, experiment.eval.pad_value)
    description = {
        "written_by": "export.export_tflite",
        "experiment": experiment.name,
        "checkpoint": built.checkpoint,
        "precision": precision,
        "input_size": list(input_size),
        "outputs": list(outputs),
        "output_stride": stride,
        "pad_to_size": list(experiment.eval.pad_to_size),
        "calibration_images": len(calibration) if calibration else 0,
        "per_channel": per_channel,
        "batch_norms_folded": built.batch_norms_folded,
        "class_names": list(built.info.class_names),
        "palette": [list(c) for c in built.info.palette],
        "ignore_label": built.info.ignore_label,
    }
    content = convert(function, precision, calibration, per_channel)
    write_checked(content, description, output, overwrite)
    log(f"Exported {experiment.name} from {built.checkpoint} to {output} ({precision}, "
        f"{os.path.getsize(output)} bytes)")
    return description


def check_input_size(input_size, output_stride: int, pad_to_size=(0, 0)) -> None:
    """Raises ValueError when the model cannot run at `input_size` (height, width): a side that
    is not a positive integer, or a size (raised to `pad_to_size`, where the model runs) below
    `export.serving.MIN_SIZE` or `output_stride` on a side, where a backbone's last feature map
    is empty."""
    from export.serving import MIN_SIZE

    if input_size is None or len(input_size) != 2 or min(input_size) < 1:
        raise ValueError(f"--input_size={input_size}: give HxW, two positive integers, e.g. 513x513")
    computed = tuple(max(side, pad) for side, pad in zip(input_size, pad_to_size))
    least = max(MIN_SIZE, output_stride)
    if min(computed) < least:
        raise ValueError(
            f"--input_size={input_size[0]}x{input_size[1]} cannot be served at output stride {output_stride}: "
            f"the model runs at {computed[0]}x{computed[1]}, and each side must be at least {least} pixels "
            f"(smaller, the backbone's last feature map is empty)")


def inference_function(model, normalize, input_size, outputs, pad_to_size=(0, 0), pad_value=(127.5,) * 3):
    """Returns the tf.function the .tflite computes: `images` uint8 [1, H, W, 3] ->
    {name: value} for `outputs` of `labels` int32 [1, H, W] (argmax of the logits), `probabilities`
    float32 [1, H, W, C] (softmax) and `logits` float32 [1, H, W, C] of `model` on `normalize`d
    pixels, padded to `pad_to_size` with `pad_value` and cropped back as the evaluator does
    (`deeplab_tf.evaluation.inference.padded`)."""
    import tensorflow as tf

    from deeplab_tf.evaluation.inference import padded

    def logits_of(pixels):
        return tf.cast(model(normalize(pixels), training=False), tf.float32)

    scorer = padded(logits_of, pad_to_size, pad_value)  # crops any per-pixel scores back

    @tf.function(input_signature=[tf.TensorSpec([1, *input_size, 3], tf.uint8, name=INPUT_NAME)])
    def serve(images):
        logits = scorer(tf.cast(images, tf.float32))
        values = {"labels": lambda: tf.argmax(logits, axis=-1, output_type=tf.int32),
                  "probabilities": lambda: tf.nn.softmax(logits, axis=-1), "logits": lambda: logits}
        return {name: values[name]() for name in outputs}

    return serve


def calibration_set(experiment, input_size, count: int) -> list:
    """Returns up to `count` images uint8 [1, H, W, 3] of the experiment's training split, each
    resized bilinearly to `input_size`: int8's calibration set. Raises ValueError naming the
    dataset, split and reason when `count` < 1, the data cannot be read, or the split holds no image."""
    import numpy as np
    import tensorflow as tf

    from deeplab_tf.data import get_source

    data = experiment.data
    where = f"split {data.train_split!r} of {data.dataset}" + (f" in {data.data_dir}" if data.data_dir else "")
    if count < 1:
        raise ValueError(f"--calibration_images={count}: int8 needs at least 1 calibration image")
    images = []
    try:
        for example in get_source(data).examples(data.train_split).take(count):
            image = tf.image.resize(tf.cast(example["image"], tf.float32)[None], input_size, method="bilinear")
            images.append(np.asarray(tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8)))
    except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
        message = getattr(error, "message", str(error)).strip().splitlines()
        raise ValueError(f"cannot read the int8 calibration images ({where}): "
                         f"{message[0] if message else type(error).__name__}") from None
    if not images:
        raise ValueError(f"no int8 calibration image: {where} holds no image")
    return images


def convert(function, precision: str, calibration=None, per_channel: bool = True) -> bytes:
    """Returns the TFLite flatbuffer of `function` (one uint8 input, a dict of outputs; its
    variables frozen into constants) at `precision`, with builtin operators only; int8 is
    calibrated on `calibration` (a list of inputs); `per_channel` False gives each quantised kernel
    one scale instead of one per output channel. Raises ValueError naming the TensorFlow
    operators when the model needs some that are not TFLite builtins (Flex / Select ops)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)

    @tf.function(input_signature=function.input_signature)
    def constant(images):  # the frozen graph, with the signature's output names
        return tf.nest.pack_sequence_as(concrete.structured_outputs, frozen(images))

    folder = tempfile.mkdtemp(prefix="deeplab_tf_tflite-")
    try:
        tf.saved_model.save(tf.Module(), folder, signatures={SIGNATURE: constant.get_concrete_function()},
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))  # inference only
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if precision != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter._experimental_disable_per_channel = not per_channel  # the converter's only switch for it
        if precision == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if precision == "int8":
            converter.representative_dataset = lambda: ({INPUT_NAME: image} for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            return converter.convert()
        except Exception as error:  # the converter's ConverterError has no public type
            raise ValueError(conversion_error(error)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def conversion_error(error: Exception) -> str:
    """Returns the one-line message of a failed conversion: the TensorFlow operators without a
    TFLite builtin when the converter names them, else the converter's first error line."""
    text = str(error)
    missing = sorted(set(re.findall(r"\btf\.(\w+)\(", text)) | set(re.findall(r"\bFlex(\w+)", text)) - {"ops"})
    if missing:
        return (f"the model needs TensorFlow operators that have no TFLite builtin: {', '.join(missing)}; "
                "a .tflite of builtin operators only cannot hold it (Flex/Select TF ops are not exported)")
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()] or text.strip().splitlines() or [""]
    return f"TFLite conversion failed: {lines[0][:400]}"


def check_ops(ops, path: str) -> None:
    """Raises ValueError when the operators `ops` (`tflite_file.read_ops`) of the file `path`
    hold a custom (Flex/Select) operator or a SpaceToBatchND / BatchToSpaceND pair (an atrous
    convolution not exported as one dilated convolution), naming each with its count."""
    counts = collections.Counter(op.opcode for op in ops)
    custom = {name: n for name, n in counts.items() if name.startswith("CUSTOM")}
    if custom:
        raise ValueError(f"{path}: the converted model holds non-builtin operators "
                         f"({', '.join(f'{name} x{n}' for name, n in sorted(custom.items()))}); not written")
    refused = {name: counts[name] for name in REFUSED_OPS if counts[name]}
    if refused:
        raise ValueError(
            f"{path}: the converted model holds {', '.join(f'{name} x{n}' for name, n in refused.items())}: "
            "its atrous convolutions did not become dilated CONV_2D / DEPTHWISE_CONV_2D; not written")


def check_replaceable(output: str, overwrite: bool) -> None:
    """Returns when `output` (a .tflite path) and its description file may be written: each
    missing, or, with `overwrite`, a file this exporter wrote (the .tflite holding the
    `EXPORT_METADATA_NAME` metadata, the description starting with `DESCRIPTION_HEADER`). Raises
    ValueError for a name not ending in .tflite, FileExistsError (one line, saying why) otherwise."""
    from deeplab_tf.pretrained.tflite_file import read_export_metadata

    if not output.endswith(".tflite"):
        raise ValueError(f"--output {output} must be a file name ending in .tflite")

    def ours(path):
        if path == output:
            try:
                return (read_export_metadata(path) or {}).get("written_by") == "export.export_tflite"
            except ValueError:
                return False
        with open(path, errors="replace") as f:
            return f.read(len(DESCRIPTION_HEADER)) == DESCRIPTION_HEADER

    for path in (output, description_path(output)):
        if not os.path.lexists(path):
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            raise FileExistsError(f"{path} is not replaced: it is {'a symbolic link' if os.path.islink(path) else 'not a file'}")
        if not ours(path):
            raise FileExistsError(f"{path} is not replaced: export.export_tflite did not write it")
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def write_checked(content: bytes, description: dict, output: str, overwrite: bool) -> None:
    """Writes `content` with `description` as metadata to `output` and the description file
    beside it, through temporary files renamed into place once the written model passed
    `check_ops` and loads in the LiteRT interpreter."""
    from deeplab_tf.pretrained.tflite_file import read_ops, with_export_metadata

    folder = os.path.dirname(output)
    os.makedirs(folder, exist_ok=True)
    staged = []
    try:
        for suffix in (".tflite", ".txt"):
            handle, path = tempfile.mkstemp(prefix=f".{os.path.basename(output)}-", suffix=suffix, dir=folder)
            os.close(handle)
            staged.append(path)
        with open(staged[0], "wb") as f:
            f.write(with_export_metadata(content, description))
        check_ops(read_ops(staged[0]), output)
        with open(staged[1], "w") as f:
            f.write(describe(staged[0], os.path.basename(output)))
        for path in staged:
            give_umask_mode(path)
        check_replaceable(output, overwrite)  # again: nothing appeared meanwhile
        os.replace(staged[1], description_path(output))
        os.replace(staged[0], output)
    finally:
        for path in staged:
            if os.path.exists(path):
                os.remove(path)


def describe(path: str, name: str) -> str:
    """Returns the description file's text of the .tflite `path` (shown as `name`): header, the
    exporter's metadata, the signature's input and outputs (tensor name, shape, dtype, quantisation
    scale and zero point) and the operators (counts, dilation factors of the dilated ones)."""
    from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter
    from deeplab_tf.pretrained.tflite_file import read_ops

    segmenter = TFLiteSegmenter(path, delegates=False)
    metadata = segmenter.metadata or {}
    lines = [f"{DESCRIPTION_HEADER} {name} ({os.path.getsize(path)} bytes)", ""]
    lines += [f"{key}: {metadata[key]}" for key in ("experiment", "checkpoint", "precision", "per_channel", "input_size",
                                                    "output_stride", "pad_to_size", "calibration_images",
                                                    "batch_norms_folded", "class_names") if key in metadata]
    lines += ["", f"signature {SIGNATURE!r}:"]
    runner = segmenter.runner
    for kind, details in (("input", runner.get_input_details()), ("output", runner.get_output_details())):
        for key, detail in details.items():
            scale, zero_point = detail["quantization"]
            quantised = f"quantisation scale={scale:.6g} zero_point={zero_point}" if scale else "not quantised"
            lines.append(f"  {kind} {key!r}: tensor {detail['name']!r} {detail['dtype'].__name__} "
                         f"{[int(d) for d in detail['shape']]}, {quantised}")
    tensors = segmenter.interpreter.get_tensor_details()
    quantised = collections.Counter(t["dtype"].__name__ for t in tensors if len(t["quantization_parameters"]["scales"]))
    per_channel = sum(len(t["quantization_parameters"]["scales"]) > 1 for t in tensors)
    lines.append("  quantised tensors: " + (", ".join(f"{name} x{n}" for name, n in sorted(quantised.items()))
                                             + f" ({per_channel} per channel)" if quantised else "none"))
    ops = read_ops(path)
    counts = collections.Counter(op.opcode for op in ops)
    lines += ["", f"operators ({len(ops)}, all builtin):"]
    lines += [f"  {opcode} x{count}" for opcode, count in counts.most_common()]
    dilated = collections.Counter(f"{op.opcode} dilation {op.dilation[0]}x{op.dilation[1]}" for op in ops if max(op.dilation) > 1)
    lines += ["", "dilated convolutions:"] + ([f"  {key} x{count}" for key, count in sorted(dilated.items())] or ["  none"])
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from export.inference_model import parse_input_size

    values = flags.FLAGS
    experiment = resolve_experiment(values.checkpoint)
    export_tflite(experiment, values.checkpoint, values.output, parse_input_size(values.input_size), values.precision,
                  values.outputs, values.calibration_images, values.output_stride or experiment.eval.output_stride,
                  values.overwrite, per_channel=values.per_channel)


if __name__ == "__main__":
    define_flags()
    run(main)
