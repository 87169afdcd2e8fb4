"""export.export_tflite: the .tflite of the tiny `exported_demo` run computes the Keras model's
logits (float32), holds builtin operators only with its atrous convolutions as dilated
convolutions, shrinks with each precision, and refuses sizes, calibration sets, operators and
outputs it cannot serve or must not replace, in one line."""

import collections
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.assembly import assemble
from deeplab_tf.config import apply_overrides
from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter
from deeplab_tf.pretrained.tflite_file import read_export_metadata, read_ops
from deeplab_tf.training.checkpoints import restore_model
from export.export_tflite import (calibration_set, check_input_size, check_ops, check_replaceable, convert,
                                  description_path, export_tflite)

SIZE = (90, 130)  # not a multiple of the output stride
STRIDE = 8  # the demo trains at 16: at 8 the last block and the ASPP are dilated


@pytest.fixture(scope="module")
def tflite_export(exported_demo, tmp_path_factory):
    """Returns export(precision, outputs=all three) -> path of the demo run's .tflite at `SIZE`,
    output stride `STRIDE`, written once per module and precision. The experiment asks for the
    `shifted_gemm` atrous implementation (same weights), which converts to no dilated convolution
    at all (PADs, STRIDED_SLICEs, FULLY_CONNECTEDs): the exporter must build with `native`."""
    experiment, run, _ = exported_demo
    experiment = apply_overrides(experiment, "model.atrous_implementation=shifted_gemm")
    root, done = tmp_path_factory.mktemp("tflite"), {}

    def export(precision, outputs=("labels", "probabilities", "logits")):
        key = (precision, tuple(outputs))
        if key not in done:
            done[key] = str(root / f"{precision}_{len(done)}.tflite")
            export_tflite(experiment, str(run), done[key], SIZE, precision, outputs, calibration_images=4,
                          output_stride=STRIDE, log=lambda line: None)
        return done[key]

    return export


@pytest.fixture(scope="module")
def keras_logits(exported_demo, camvid_crops):
    """The restored Keras model's logits on `camvid_crops` at `STRIDE` (batch norms not folded,
    the experiment's own atrous implementation): float32 [2, 90, 130, C]."""
    experiment, run, _ = exported_demo
    parts = assemble(experiment, output_stride=STRIDE, with_data=False)
    restore_model(parts.model, str(run))
    return parts.model(parts.normalize(tf.cast(camvid_crops, tf.float32)), training=False).numpy()


def run_all(path, images):
    segmenter = TFLiteSegmenter(path)
    results = [segmenter(image) for image in images]
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def test_float32_gives_the_keras_models_logits_probabilities_and_labels(tflite_export, camvid_crops, keras_logits):
    out = run_all(tflite_export("float32"), camvid_crops)
    assert out["logits"].shape == keras_logits.shape and out["labels"].dtype == np.int32
    assert np.abs(out["logits"] - keras_logits).max() <= 1e-4 * np.abs(keras_logits).max()
    np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(keras_logits).numpy(), atol=1e-5)
    top2 = np.sort(keras_logits, axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-3
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(out["labels"][decided], np.argmax(keras_logits, -1)[decided])


def test_operators_are_builtin_and_atrous_convolutions_are_dilated(tflite_export):
    path = tflite_export("float32")
    ops = read_ops(path)
    counts = collections.Counter(op.opcode for op in ops)
    assert not [name for name in counts if name.startswith("CUSTOM")]
    assert counts["SPACE_TO_BATCH_ND"] == counts["BATCH_TO_SPACE_ND"] == 0
    dilated = collections.Counter((op.opcode, op.dilation) for op in ops if max(op.dilation) > 1)
    # the last MobileNetV2 blocks at stride 8 (rate 2) and the ASPP's three branches (12, 24, 36)
    assert dilated[("DEPTHWISE_CONV_2D", (2, 2))] >= 1
    assert {("CONV_2D", (r, r)) for r in (12, 24, 36)} <= set(dilated)
    text = open(description_path(path)).read()
    assert "DEPTHWISE_CONV_2D dilation 2x2" in text and "CONV_2D dilation 24x24 x1" in text
    assert "input 'images': tensor 'serving_default_images:0' uint8 [1, 90, 130, 3]" in text
    assert f"CONV_2D x{counts['CONV_2D']}" in text


def test_the_file_carries_its_description(tflite_export, exported_demo):
    experiment, run, _ = exported_demo
    metadata = read_export_metadata(tflite_export("float32"))
    assert (metadata["experiment"], metadata["precision"], metadata["input_size"]) == ("demo", "float32", [90, 130])
    assert metadata["checkpoint"] == str(run / "checkpoints" / "ckpt-2") and metadata["output_stride"] == STRIDE
    assert len(metadata["class_names"]) == len(metadata["palette"]) == 4


# On this tiny model tensor names and quantisation parameters weigh more than on a real one
# (BENCHMARKS.md has the sizes of the CamVid model).
# Measured on the 2-step demo model (small logit margins): label agreement 0.9992 / 0.991 / 0.966,
# mean |probability difference| 1.3e-4 / 2.5e-3 / 8.9e-3 when oneDNN's kernels trained it, and
# 0.9994 / 0.998 / 0.940, 1.1e-3 / 3.8e-3 / 5.0e-2 when Eigen's did (TF_ENABLE_ONEDNN_OPTS=0, as on
# CPUs without AVX512_VNNI/BF16/AVX_VNNI/AMX). Its first step is ill-conditioned (noise of 1e-6 on
# the images moves its gradients by 12%, median over variables: `python -m bench.step_gradients
# --experiment=demo --first_batch`, BENCHMARKS.md), so the two kernel sets train visibly different
# models from the same start. The bounds hold for both.
@pytest.mark.parametrize("precision, at_most, agreement, mean_difference", [
    ("float16", 0.6, 0.995, 3e-3), ("dynamic_range", 0.45, 0.97, 1e-2), ("int8", 0.45, 0.9, 1e-1)])
def test_smaller_precisions_shrink_the_file_and_keep_the_float32_labels(tflite_export, camvid_crops, precision,
                                                                         at_most, agreement, mean_difference):
    path, reference = tflite_export(precision), tflite_export("float32")
    assert os.path.getsize(path) <= at_most * os.path.getsize(reference)
    out, float32 = run_all(path, camvid_crops), run_all(reference, camvid_crops)
    assert out["probabilities"].dtype == np.float32 and out["labels"].dtype == np.int32
    assert (out["labels"] == float32["labels"]).mean() >= agreement
    assert np.abs(out["probabilities"] - float32["probabilities"]).mean() <= mean_difference
    text = open(description_path(path)).read()
    assert f"precision: {precision}" in text
    opcodes = {op.opcode for op in read_ops(path)}
    if precision == "float16":  # float16 weights, dequantised to float32 once at load
        assert "quantised tensors: none" in text and "DEQUANTIZE" in opcodes
    if precision == "dynamic_range":  # int8 weights, float activations
        assert re.search(r"quantised tensors: .*int8 x\d+", text) and "QUANTIZE" not in opcodes
    if precision == "int8":  # int8 activations from the normalised input on
        assert re.search(r"quantised tensors: int32 x\d+, int8 x\d+", text) and "QUANTIZE" in opcodes
        assert "calibration_images: 4" in text
        assert read_export_metadata(path)["calibration_images"] == 4


def test_outputs_are_those_asked(tflite_export, camvid_crops):
    segmenter = TFLiteSegmenter(tflite_export("float32", ("labels",)))
    assert segmenter.outputs == ("labels",) and segmenter.num_classes is None
    with pytest.raises(ValueError, match="returns labels, not probabilities: export it with --outputs"):
        segmenter.scorer()


def test_a_wrong_image_is_refused_naming_file_and_shapes(tflite_export, camvid_crops):
    path = tflite_export("float32")
    segmenter = TFLiteSegmenter(path)
    with pytest.raises(ValueError, match=rf"{path} takes uint8 images of 90x130x3 \(input \[1, 90, 130, 3\]\); "
                                         r"got uint8 \[1, 64, 64, 3\]"):
        segmenter(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"got float32 \[1, 90, 130, 3\]"):
        segmenter(camvid_crops[0].astype(np.float32))


def test_other_sizes_are_resized_to_the_model_and_back(tflite_export, camvid_crops):
    segmenter = TFLiteSegmenter(tflite_export("float32"))
    image = camvid_crops[0]
    np.testing.assert_array_equal(segmenter.labels(image), segmenter(image)["labels"][0])
    larger = tf.cast(tf.round(tf.image.resize(image[None].astype(np.float32), (180, 260))), tf.uint8).numpy()[0]
    labels = segmenter.labels(larger)
    assert labels.shape == (180, 260)
    scores = segmenter.scorer()(larger[None]).numpy()
    np.testing.assert_array_equal(labels, np.argmax(scores[0], -1))


@pytest.mark.parametrize("size, stride, pad, message", [
    ((8, 200), 16, (0, 0), "--input_size=8x200 cannot be served at output stride 16: the model runs at 8x200, "
                           "and each side must be at least 16 pixels"),
    ((12, 12), 8, (0, 0), "each side must be at least 16 pixels"),
    ((0, 5), 8, (0, 0), "give HxW, two positive integers"),
])
def test_sizes_the_output_stride_cannot_serve_are_refused(size, stride, pad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        check_input_size(size, stride, pad)


def test_a_small_input_padded_to_a_serveable_size_is_accepted():
    check_input_size((8, 8), 16, (513, 513))
    check_input_size((16, 16), 16)


def camvid_experiment(data_dir):
    from experiments import get_experiment

    # Its own TFDS folder: CamVid prepared by other tests from another folder must not answer.
    return apply_overrides(get_experiment("camvid_mnv2_v3plus"),
                           f"data.data_dir={data_dir},data.tfds_data_dir={data_dir}/tfds")


def test_an_empty_calibration_set_is_refused(tmp_path):
    (tmp_path / "train.txt").write_text("")
    (tmp_path / "val.txt").write_text("")
    with pytest.raises(ValueError, match=rf"^cannot read the int8 calibration images \(split 'train' of camvid in "
                                         rf"{tmp_path}\): camvid_folder: list file .*train.txt' lists no pairs"):
        calibration_set(camvid_experiment(tmp_path), (64, 64), 4)
    with pytest.raises(ValueError, match="--calibration_images=0: int8 needs at least 1"):
        calibration_set(camvid_experiment(tmp_path), (64, 64), 0)


def test_an_unreadable_calibration_set_is_refused_naming_it(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    (tmp_path / "train" / "a.png").write_bytes(b"not an image")
    (tmp_path / "trainannot" / "a.png").write_bytes(b"not an image")
    (tmp_path / "train.txt").write_text("train/a.png trainannot/a.png\n")
    (tmp_path / "val.txt").write_text("train/a.png trainannot/a.png\n")
    with pytest.raises(ValueError, match=rf"^cannot read the int8 calibration images \(split 'train' of camvid in {tmp_path}\): "):
        calibration_set(camvid_experiment(tmp_path), (64, 64), 4)
    with pytest.raises(ValueError, match="cannot read the int8 calibration images"):
        calibration_set(camvid_experiment(tmp_path / "missing"), (64, 64), 4)


def test_calibration_images_are_training_images_resized():
    from experiments import get_experiment

    images = calibration_set(get_experiment("demo"), (40, 50), 3)
    assert [image.shape for image in images] == [(1, 40, 50, 3)] * 3 and images[0].dtype == np.uint8
    assert len({image.tobytes() for image in images}) == 3


def test_tensorflow_ops_without_a_builtin_are_refused_by_name():
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.uint8, name="images")])
    def needs_flex(images):
        pixels = tf.cast(images, tf.float32) + 1.0
        return {"logits": tf.math.igamma(pixels, pixels) + tf.math.erfinv(pixels / 256.0)}

    with pytest.raises(ValueError, match="needs TensorFlow operators that have no TFLite builtin: Erfinv, Igamma; "):
        convert(needs_flex, "float32")


def test_space_to_batch_in_a_converted_model_is_refused(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.uint8, name="images")])
    def undilated(images):
        return {"logits": tf.space_to_batch(tf.cast(images, tf.float32), [2, 2], [[0, 0], [0, 0]])}

    path = tmp_path / "s2b.tflite"
    path.write_bytes(convert(undilated, "float32"))
    with pytest.raises(ValueError, match=r"holds SPACE_TO_BATCH_ND x1: its atrous convolutions did not become dilated"):
        check_ops(read_ops(str(path)), str(path))


def test_only_a_tflite_this_exporter_wrote_is_replaced(tflite_export, exported_demo, tmp_path):
    experiment, run, _ = exported_demo
    with pytest.raises(ValueError, match="must be a file name ending in .tflite"):
        check_replaceable(str(tmp_path / "model.tfl"), True)
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"TFL3 something else")
    with pytest.raises(FileExistsError, match=f"{foreign} is not replaced: export.export_tflite did not write it"):
        check_replaceable(str(foreign), True)
    (tmp_path / "folder.tflite").mkdir()
    with pytest.raises(FileExistsError, match="is not replaced: it is not a file"):
        check_replaceable(str(tmp_path / "folder.tflite"), True)
    ours = tmp_path / "ours.tflite"
    ours.write_bytes(open(tflite_export("float32"), "rb").read())
    with pytest.raises(FileExistsError, match=f"{ours} exists; pass --overwrite to replace it"):
        check_replaceable(str(ours), False)
    check_replaceable(str(ours), True)
    description = tmp_path / "ours.signatures.txt"
    description.write_text("my notes\n")
    with pytest.raises(FileExistsError, match=f"{description} is not replaced"):
        check_replaceable(str(ours), True)
    description.unlink()
    before, lines = ours.read_bytes(), []
    export_tflite(experiment, str(run), str(ours), (32, 48), "float32", ("labels",), overwrite=True, log=lines.append)
    assert ours.read_bytes() != before and TFLiteSegmenter(str(ours)).input_size == (32, 48)
    assert lines[-1].endswith(f" to {ours} (float32, {ours.stat().st_size} bytes)")  # the file's, metadata included
    assert sorted(os.listdir(tmp_path)) == ["folder.tflite", "foreign.tflite", "ours.signatures.txt", "ours.tflite"]


def test_an_export_given_as_a_published_model_is_refused_naming_its_checkpoint(tflite_export, exported_demo):
    """Before, the importer read an exported float file as the official MobileNetV2 and failed on
    a missing tensor name; an int8 file failed on its first quantised tensor."""
    from deeplab_tf.pretrained.published import load_published_model

    experiment, run, _ = exported_demo
    model = assemble(experiment, with_data=False).model
    for precision in ("float32", "int8"):
        path = tflite_export(precision)
        with pytest.raises(ValueError, match=rf"{path} is a deeplab-tf LiteRT export \(demo, {precision}\), not a "
                                             rf"published model: start from the checkpoint it was exported from \({run}"):
            load_published_model(model, path)


def test_the_official_file_is_not_replaced(tmp_path):
    from tests.pretrained.conftest import OFFICIAL_DIR

    official = os.path.join(OFFICIAL_DIR, "tflite_mnv2_dm05_voc", "deeplabv3_257_mv_gpu.tflite")
    if not os.path.exists(official):
        pytest.skip(f"no {official}")
    assert read_export_metadata(official) is None
    with pytest.raises(FileExistsError, match="export.export_tflite did not write it"):
        check_replaceable(official, True)


def test_per_tensor_quantisation_keeps_one_scale_per_kernel(exported_demo, tflite_export, tmp_path):
    experiment, run, _ = exported_demo
    path = str(tmp_path / "per_tensor.tflite")
    export_tflite(experiment, str(run), path, SIZE, "dynamic_range", ("labels",), output_stride=STRIDE,
                  log=lambda line: None, per_channel=False)
    text = open(description_path(path)).read()
    assert "per_channel: False" in text and re.search(r"quantised tensors: int8 x\d+ \(0 per channel\)", text)
    assert re.search(r"quantised tensors: int8 x\d+ \([1-9]\d* per channel\)",
                     open(description_path(tflite_export("dynamic_range"))).read())


def test_equal_zero_point_vectors_are_stored_once(tflite_export, camvid_crops, tmp_path):
    """The int8 file against the same model serialised plainly (one vector per table, as
    `flatbuffer_utils` writes it): smaller by 8 bytes per zero point beyond the first vector of
    each content, and the interpreter returns exactly the same outputs."""
    from tensorflow.lite.tools import flatbuffer_utils

    path = tflite_export("int8")
    model = flatbuffer_utils.read_model(path)
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    zero_points = [np.asarray(tensor.quantization.zeroPoint, np.int64) for graph in model.subgraphs
                   for tensor in graph.tensors if tensor.quantization is not None
                   and tensor.quantization.zeroPoint is not None]
    distinct = {z.tobytes(): z.size for z in zero_points}
    saved = 8 * (sum(z.size for z in zero_points) - sum(distinct.values()))
    assert saved > 0.03 * os.path.getsize(path)  # per-channel int8: most vectors are repeats
    assert os.path.getsize(plain) - os.path.getsize(path) >= saved
    ours, theirs = run_all(path, camvid_crops), run_all(str(plain), camvid_crops)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])


@pytest.mark.parametrize("output, error", [
    ("a_file/m.tflite", r"the folder of --output {tmp}/a_file is a file, not a folder"),
    ("a_file/sub/m.tflite", r"cannot create the folder of --output {tmp}/a_file/sub: Not a directory"),
])
def test_an_output_that_cannot_be_written_is_refused_before_building(tmp_path, monkeypatch, output, error):
    """The conversion takes minutes for a large model: a folder that is a file, or cannot be made,
    is said before it."""
    import export.inference_model

    def built(*args, **kwargs):
        raise AssertionError("built the model before checking --output")

    monkeypatch.setattr(export.inference_model, "build_inference_model", built)
    (tmp_path / "a_file").write_text("")
    from experiments import get_experiment

    with pytest.raises(OSError, match=f"^{error.format(tmp=re.escape(str(tmp_path)))}$"):
        export_tflite(get_experiment("demo"), str(tmp_path / "no_checkpoint"), str(tmp_path / output), (64, 64),
                      log=lambda line: None)


def test_a_failed_export_leaves_no_new_folder(tmp_path, monkeypatch):
    """The folder of --output is checked before the model is built, and made only to write the file."""
    import export.inference_model

    def built(*args, **kwargs):
        raise ValueError("cannot build")

    monkeypatch.setattr(export.inference_model, "build_inference_model", built)
    from experiments import get_experiment

    with pytest.raises(ValueError, match="^cannot build$"):
        export_tflite(get_experiment("demo"), str(tmp_path / "no_checkpoint"), str(tmp_path / "new" / "m.tflite"),
                      (64, 64), log=lambda line: None)
    assert not list(tmp_path.iterdir())
