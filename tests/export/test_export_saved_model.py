"""Export: every signature, reloaded in a process that cannot import deeplab_tf, predicts the same
labels as the Keras model on real CamVid images (plain, and with test-time augmentation at another
output stride plus the CRF); a fixed input size and batch; only standard ops; signatures.txt;
existing exports are kept, and --overwrite replaces only an earlier export; flags become serving
options; batch norm folding (the default) keeps the labels of the unfolded Keras model; a bfloat16
export computes its convolutions in bfloat16 from bfloat16 weights and stays close to the float32
Keras model."""

import json
import os
import shutil
import stat
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

from deeplab_tf.assembly import assemble
from deeplab_tf.training.checkpoints import restore_model
from deeplab_tf.crf import DenseCRFParams, refine_batch, save_params
from deeplab_tf.models.fold_batch_norm import count_batch_norms, foldable_pairs
from export.export_saved_model import export_saved_model, serving_options
from export.serving import MAX_PIXELS, ServingOptions, serving_functions
from tests.cpu_capabilities import bfloat16_sums_in_float32
from tests.file_digest import tree_digest

FULL = ServingOptions(
    input_types=("tf_example", "image_tensor", "image_bytes"),
    outputs=("labels", "probabilities"),
    scales=(0.75,),
    flip=True,
    crf=DenseCRFParams(iterations=3),  # fewer than the default 10: each iteration is traced per signature
)
FULL_OUTPUT_STRIDE = 8
EXPORT_MARKER = "deeplab_tf_export.json"  # the marker of every export (export/README.md)


def augmented_reference(keras_probabilities, images, scales, output_stride):
    """Probabilities averaged over `scales` and left-right flips, from the eager Keras model."""
    height, width = images.shape[1:3]
    total = 0.0
    for scale in scales:
        size = (round(height * scale), round(width * scale))
        scaled = tf.image.resize(tf.cast(images, tf.float32), size).numpy() if scale != 1 else images
        for flip in (False, True):
            probabilities = keras_probabilities(scaled[:, :, ::-1] if flip else scaled, output_stride)
            probabilities = probabilities[:, :, ::-1] if flip else probabilities
            total += tf.image.resize(probabilities, (height, width)).numpy() if scale != 1 else probabilities
    return total / (2 * len(scales))


def test_every_signature_matches_keras_on_camvid(exported_demo, camvid_crops, fresh_process_predict, keras_probabilities):
    out = fresh_process_predict(exported_demo[2], camvid_crops)
    expected = keras_probabilities(camvid_crops)
    for name in ("serving_default", "serving_image_tensor", "serving_tf_example"):
        assert out[f"{name}/labels"].dtype == np.int32 and out[f"{name}/labels"].shape == (2, 90, 130)
        np.testing.assert_array_equal(out[f"{name}/labels"], expected.argmax(-1), err_msg=name)
    assert "serving_default/probabilities" not in out and "serving_tf_example/probabilities" not in out
    np.testing.assert_allclose(out["serving_image_tensor/probabilities"], expected, atol=1e-5)


@pytest.fixture(scope="module")
def full_export(export_variant):
    return export_variant("full", FULL, output_stride=FULL_OUTPUT_STRIDE)


def test_crf_multi_scale_flip_output_stride_export_matches_eager(full_export, camvid_crops, fresh_process_predict,
                                                                  keras_probabilities):
    out = fresh_process_predict(full_export, camvid_crops)
    augmented = augmented_reference(keras_probabilities, camvid_crops, FULL.scales, FULL_OUTPUT_STRIDE)
    refined = refine_batch(camvid_crops, augmented, FULL.crf).numpy()  # the TensorFlow CRF, eagerly
    assert sorted(key for key in out if "/" in key) == [f"{name}/{output}" for name in ("serving_default", "serving_image_bytes", "serving_image_tensor")
                           for output in ("labels", "probabilities")]
    for name in ("serving_default", "serving_image_bytes", "serving_image_tensor"):  # default = tf_example
        np.testing.assert_array_equal(out[f"{name}/labels"], refined.argmax(-1), err_msg=name)
        np.testing.assert_allclose(out[f"{name}/probabilities"], refined, atol=1e-4, err_msg=name)


def graph_ops(export_dir):
    """(op type, name of the dtype attribute "T", or None if it has none or a list) of every node in
    the SavedModel's graph and functions."""
    model = saved_model_pb2.SavedModel()
    model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    graph = model.meta_graphs[0].graph_def
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    return {(node.op, tf.dtypes.as_dtype(node.attr["T"].type).name if node.attr["T"].type else None)
            for node in nodes}


def test_only_standard_tensorflow_ops(full_export):
    ops = {op for op, _ in graph_ops(full_export)}
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    assert [op for op in sorted(ops) if op_def_registry.get(op) is None] == []
    assert {"DecodeImage", "ParseExampleV2", "ArgMax", "ResizeBilinear"} <= ops


def test_signatures_txt_lists_documented_names_dtypes_and_shapes(full_export):
    text = (full_export / "signatures.txt").read_text()
    for expected in (
        "signature_def['serving_default']:\n  The given SavedModel SignatureDef contains the following input(s):\n"
        "    inputs['examples'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
        "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)",
        "inputs['images'] tensor_info:\n        dtype: DT_UINT8\n        shape: (-1, -1, -1, 3)",
        "outputs['labels'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, -1, -1)",
        "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, -1, -1, 4)",
        "signature_def['serving_image_bytes']", "signature_def['serving_image_tensor']",
    ):
        assert expected in text


def test_dataset_info_records_classes_and_serving_options(full_export):
    info = json.load(open(full_export / "assets.extra" / "dataset_info.json"))
    assert info["class_names"][0] == "background" and len(info["palette"]) == 4 and info["output_stride"] == 8
    assert info["serving"]["crf"] == FULL.crf.to_dict() and info["serving"]["scales"] == [0.75]
    assert info["serving"]["signatures"]["serving_image_tensor"] == {"input": "images", "outputs": ["labels", "probabilities"]}


def test_fixed_batch_and_input_size(exported_demo, camvid_crops, keras_probabilities):
    experiment, model_dir, _ = exported_demo
    built = assemble(experiment)
    restore_model(built.model, str(model_dir))
    options = ServingOptions(input_types=("image_tensor", "image_bytes"), batch_size=2, input_size=(48, 64))
    functions = serving_functions(built.model, built.normalize, options)
    assert functions["serving_default"].input_signature[0].shape.as_list() == [2, 48, 64, 3]
    assert functions["serving_image_bytes"].input_signature[0].shape.as_list() == [2]
    labels = functions["serving_image_bytes"](tf.stack([tf.io.encode_png(image) for image in camvid_crops]))["labels"]
    at_input_size = keras_probabilities(tf.image.resize(tf.cast(camvid_crops, tf.float32), (48, 64)).numpy())
    expected = tf.image.resize(at_input_size, camvid_crops.shape[1:3]).numpy().argmax(-1)  # back at the image's size
    np.testing.assert_array_equal(labels.numpy(), expected)


def test_folded_and_unfolded_exports_match_the_unfolded_keras_model(exported_demo, export_variant, camvid_crops,
                                                                     fresh_process_predict, keras_probabilities):
    experiment, model_dir, folded_dir = exported_demo  # exported with the default, fold_batch_norm=True
    unfolded_dir = export_variant("unfolded", ServingOptions(), fold_batch_norm=False)
    keras_model = assemble(experiment).model
    restore_model(keras_model, str(model_dir))
    expected = keras_probabilities(camvid_crops)  # the restored Keras model, batch norms included
    folded_info = json.load(open(folded_dir / "assets.extra" / "dataset_info.json"))
    unfolded_info = json.load(open(unfolded_dir / "assets.extra" / "dataset_info.json"))
    assert folded_info["fold_batch_norm"] and not unfolded_info["fold_batch_norm"]
    assert folded_info["batch_norms_folded"] == len(foldable_pairs(keras_model)) == count_batch_norms(keras_model) > 0
    assert unfolded_info["batch_norms_folded"] == 0
    for name, export_dir in (("folded", folded_dir), ("unfolded", unfolded_dir)):
        out = fresh_process_predict(export_dir, camvid_crops)
        np.testing.assert_array_equal(out["tensor_labels"], expected.argmax(-1), err_msg=name)
        np.testing.assert_array_equal(out["bytes_labels"], expected.argmax(-1), err_msg=name)
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5, err_msg=name)
    # The folded export holds no batch norm statistics: 4 variables fewer per folded layer.
    folded_variables = len(tf.saved_model.load(str(folded_dir)).variables)
    unfolded_variables = len(tf.saved_model.load(str(unfolded_dir)).variables)
    assert unfolded_variables - folded_variables == 4 * folded_info["batch_norms_folded"] - len(
        [conv for conv, _ in foldable_pairs(keras_model) if not keras_model_layer(keras_model, conv).use_bias])


def test_bfloat16_export_computes_in_bfloat16_close_to_float32(export_variant, camvid_crops, fresh_process_predict,
                                                               keras_probabilities):
    export_dir = export_variant("bfloat16", ServingOptions(), precision="bfloat16")
    assert json.load(open(export_dir / "assets.extra" / "dataset_info.json"))["precision"] == "bfloat16"
    convolutions = {dtype for op, dtype in graph_ops(export_dir) if op in ("Conv2D", "DepthwiseConv2dNative")}
    assert convolutions == {"bfloat16"}
    # The convolutions' weights are stored as they are computed (no per-call casts).
    variables = tf.saved_model.load(str(export_dir)).variables
    kernels = {v.dtype.name for v in variables if v.name.split(":")[0].endswith("kernel")}
    assert kernels == {"bfloat16"}, [(v.name, v.dtype.name) for v in variables]
    out = fresh_process_predict(export_dir, camvid_crops)
    expected = keras_probabilities(camvid_crops)  # float32
    assert out["probabilities"].dtype == np.float32
    # bfloat16 keeps 8 significant bits; through the ~60 layers of the demo model the
    # probabilities stay within 5e-2 (5e-3 on average; measured 3.9e-2 / 2.0e-3 with oneDNN's
    # kernels, which sum in float32), and labels may flip only where float32's two best classes
    # are closer than twice that. Where this CPU's bfloat16 kernels round their sums to bfloat16
    # (Eigen's: CPUs without AVX512_VNNI/BF16/AVX_VNNI/AMX, or TF_ENABLE_ONEDNN_OPTS=0) errors are
    # larger (measured 9.5e-2 / 8.7e-3, on the demo model those kernels train): 2.5x the bounds.
    largest, mean = (5e-2, 5e-3) if bfloat16_sums_in_float32() else (1.25e-1, 1.25e-2)
    difference = np.abs(out["probabilities"] - expected)
    assert difference.max() < largest and difference.mean() < mean
    top2 = np.sort(expected, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 2 * largest
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(out["tensor_labels"][clear], expected.argmax(-1)[clear])


def test_export_of_auto_atrous_equals_export_of_native(exported_demo, tmp_path, camvid_crops, monkeypatch):
    """At a fixed input size `auto` takes `tap_gradient` for ASPP (its forward pass: a dilated
    convolution with the kernel cut to the taps that read the map); the export computes what the
    reference implementation (`native`) does."""
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.layers import atrous_conv

    experiment, model_dir, _ = exported_demo
    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    options = ServingOptions(input_types=("image_tensor",), input_size=(64, 96), outputs=("probabilities",))
    outputs = {}
    for name in ("auto", "native"):
        export_dir = tmp_path / name
        export_saved_model(apply_overrides(experiment, f"model.atrous_implementation={name}"), str(model_dir),
                           str(export_dir), options=options, log=lambda line: None)
        images = tf.image.resize(camvid_crops, (64, 96)).numpy().round().astype(np.uint8)
        signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        outputs[name] = signature(images=tf.constant(images))["probabilities"].numpy()
    assert "tap_gradient" in picks
    np.testing.assert_allclose(outputs["auto"], outputs["native"], atol=1e-5)


def test_unknown_precision_is_refused(exported_demo, tmp_path):
    experiment, model_dir, _ = exported_demo
    with pytest.raises(ValueError, match="precision='float16'"):
        export_saved_model(experiment, str(model_dir), str(tmp_path / "out"), precision="float16")
    assert not (tmp_path / "out").exists()


def keras_model_layer(model, name):
    """The layer called `name` in `model` or its nested models."""
    return next(layer for layer in model._flatten_layers(include_self=False, recursive=True) if layer.name == name)


def test_existing_export_is_not_overwritten(exported_demo):
    experiment, model_dir, export_dir = exported_demo
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_saved_model(experiment, str(model_dir), str(export_dir), log=lambda line: None)


@pytest.fixture
def run_copy(exported_demo, tmp_path):
    """Copies of the `exported_demo` run and export: returns (experiment, ROOT/runs/run, ROOT/export)."""
    experiment, model_dir, export_dir = exported_demo
    shutil.copytree(model_dir, tmp_path / "runs" / "run")
    shutil.copytree(export_dir, tmp_path / "export")
    return experiment, tmp_path / "runs" / "run", tmp_path / "export"


@pytest.mark.parametrize("target, reason", [
    ("runs/run", r"holds the checkpoint"),  # the case: --checkpoint=RUN --export_dir=RUN
    ("runs", r"holds the checkpoint"),
    ("runs/run/checkpoints", r"holds a training run's files \(checkpoint\)"),
    ("user_folder", r"has no readable deeplab_tf_export.json"),
    ("export_with_a_user_file", r"holds files this exporter did not write: notes.txt"),
    ("a_file", r"is not a folder"),
])
def test_overwrite_refuses_anything_but_an_earlier_export(run_copy, target, reason):
    """--overwrite never removes a model dir, the checkpoint's folder or a parent of it, a folder
    this exporter did not write, or an export holding a file it did not write: FileExistsError,
    every file as it was."""
    experiment, model_dir, export_dir = run_copy
    root = model_dir.parent.parent
    (root / "user_folder").mkdir()
    (root / "user_folder" / "notes.txt").write_text("mine")
    shutil.copytree(export_dir, root / "export_with_a_user_file")
    (root / "export_with_a_user_file" / "notes.txt").write_text("mine")
    (root / "a_file").write_text("mine")
    before = tree_digest(root)
    with pytest.raises(FileExistsError, match=rf"--export_dir {root / target} is not replaced: it {reason}"):
        export_saved_model(experiment, str(model_dir), str(root / target), overwrite=True, log=lambda line: None)
    assert tree_digest(root) == before


def test_overwrite_replaces_an_earlier_export_and_marks_the_new_one(run_copy):
    """The marker lists every file of the export; an earlier export (here, with the tf_example
    signature) is replaced in place, leaving no temporary folder beside it."""
    experiment, model_dir, export_dir = run_copy
    assert "serving_tf_example" in (export_dir / "signatures.txt").read_text()
    export_saved_model(experiment, str(model_dir), str(export_dir), overwrite=True, log=lambda line: None)
    assert "serving_tf_example" not in (export_dir / "signatures.txt").read_text()
    marker = json.loads((export_dir / EXPORT_MARKER).read_text())
    assert marker["written_by"] == "export.export_saved_model"
    assert set(tree_digest(export_dir)) - {EXPORT_MARKER} <= set(marker["files"])  # and empty folders
    assert all((export_dir / name).exists() for name in marker["files"])
    assert {"saved_model.pb", "signatures.txt", "assets.extra/dataset_info.json"} <= set(marker["files"])
    assert sorted(path.name for path in export_dir.parent.iterdir()) == ["export", "runs"]


def flag_values(tmp_path, **changes):
    values = dict(input_type=["image_bytes"], outputs=[], batch_size=None, input_size="", scales=["1.0"], flip=False,
                  fusion=None, crf=False, crf_params="", checkpoint=str(tmp_path), max_pixels=MAX_PIXELS)
    return types.SimpleNamespace(**{**values, **changes})


def test_flags_become_serving_options(tmp_path):
    options = serving_options(flag_values(tmp_path, input_size="64x96", scales=["0.5", "1"], outputs=["labels"]))
    assert (options.input_size, options.scales, options.outputs) == ((64, 96), (0.5, 1.0), ("labels",))
    assert serving_options(flag_values(tmp_path, crf=True)).crf == DenseCRFParams()
    save_params(DenseCRFParams(w1=7.0), str(tmp_path / "crf_params.json"))
    assert serving_options(flag_values(tmp_path, crf=True)).crf.w1 == 7.0  # found beside the checkpoint
    for bad, message in ((dict(input_size="64"), "height, width"), (dict(input_size="ax3"), "HxW"), (dict(scales=["x"]), "numbers"),
                         (dict(input_type=["jpeg"]), "unknown input type 'jpeg'"), (dict(outputs=["logits"]), "unknown output"),
                         (dict(scales=["0"]), "positive"), (dict(input_type=["image_bytes"] * 2), "distinct"),
                         (dict(scales=["1", "nan"]), r"positive finite numbers, got \(1.0, nan\)"),
                         (dict(scales=["inf"]), r"positive finite numbers, got \(inf,\)")):
        with pytest.raises(ValueError, match=message):
            serving_options(flag_values(tmp_path, **bad))


@pytest.mark.parametrize("size, batch, pixels", [((100_000, 100_000), None, 10**10), ((2048, 2049), 2, 8_392_704),
                                                 ((8, 8), 40_000, 40_000 * 16 * 16)])
def test_options_no_request_fits_are_refused(size, batch, pixels):
    """An input size, batch and least computed size (16 a side) whose smallest request is above
    max_pixels: before, the export succeeded and every request was refused."""
    height, width = max(size[0], 16), max(size[1], 16)
    with pytest.raises(ValueError, match=rf"no request could be served: the smallest, {batch or 1} image\(s\) computed "
                                         rf"at {height} x {width}, holds {pixels} pixels, more than max_pixels = {MAX_PIXELS}"):
        ServingOptions(input_size=size, batch_size=batch)
    ServingOptions(input_size=(2048, 4096), batch_size=1)  # exactly max_pixels: served


@pytest.mark.parametrize("flag, message", [
    ("--scales=nan", "scales must be positive finite numbers, got (nan,)"),
    ("--scales=0.5,inf", "scales must be positive finite numbers, got (0.5, inf)"),
    ("--input_size=100000x100000", "computed at 100000 x 100000, holds 10000000000 pixels, more than max_pixels"),
])
def test_the_command_refuses_options_that_serve_nothing_in_one_line(exported_demo, tmp_path, run_command, flag,
                                                                    message):
    """The report's cases: --scales=nan or inf exported a model labelling every pixel 0, and an
    --input_size above --max_pixels one that refused every request. Exit status 2, nothing written."""
    _, model_dir, _ = exported_demo
    result = run_command("export.export_saved_model", f"--checkpoint={model_dir}", f"--export_dir={tmp_path / 'x'}",
                         flag)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "x").exists()


def test_the_export_folder_has_the_mode_the_umask_gives_a_new_folder(exported_demo, tmp_path):
    """Before, the folder kept tempfile.mkdtemp's 0700: a serving user other than the exporter
    could not read it. Expected: the mode os.mkdir gives under this process's umask."""
    _, _, export_dir = exported_demo
    (tmp_path / "made").mkdir()
    expected = stat.S_IMODE(os.stat(tmp_path / "made").st_mode)
    assert stat.S_IMODE(os.stat(export_dir).st_mode) == expected
    assert stat.S_IMODE(os.stat(export_dir / "variables").st_mode) == expected


@pytest.mark.parametrize("export_dir, message", [
    ("", r"^--export_dir is empty: give the folder to write the SavedModel into$"),
    ("a_file/export", r"^cannot write --export_dir .*a_file/export: no folder can be made in .*a_file \(File exists\)$"),
])
def test_an_export_dir_that_cannot_be_written_is_refused_before_the_model_is_built(exported_demo, tmp_path,
                                                                                   monkeypatch, export_dir, message):
    """Before: an empty --export_dir meant the current folder, and an unwritable one failed after
    the model was built, naming a hidden temporary folder."""
    import export.inference_model

    experiment, model_dir, _ = exported_demo
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("mine")
    monkeypatch.setattr(export.inference_model, "build_inference_model", None)  # never reached
    with pytest.raises((ValueError, OSError), match=message):
        export_saved_model(experiment, str(model_dir), export_dir, log=lambda line: None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]
