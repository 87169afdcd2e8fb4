"""predict: label PNGs and overlays per image; unreadable files reported by name and skipped;
never a write into its inputs, never two images on one output, no existing file replaced without
--overwrite, every write checked, and one `error:` line (exit status 2) for a wrong SavedModel
(one without labels, or of a fixed batch other than 1) or an output folder it cannot create."""

import functools
import re

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.cli import predict
from deeplab_tf.cli.predict import list_inputs, overlay, predict_files
from tests.file_digest import tree_digest

PREDICT = "deeplab_tf.cli.predict"


@functools.cache
def serving_image_tensor(export_dir):
    """The export's image-tensor signature (no encoding or decoding), loaded once."""
    return tf.saved_model.load(str(export_dir)).signatures["serving_image_tensor"]


def reference_labels(export_dir, image_rgb):
    """The export's labels for uint8 RGB `image_rgb`."""
    return serving_image_tensor(export_dir)(images=tf.constant(image_rgb[None]))["labels"][0].numpy()


def write_images(folder, names, size=(20, 30)) -> dict:
    """Writes one distinct random BGR image per name (paths below `folder`); returns {name: RGB image}."""
    rng, images = np.random.default_rng(0), {}
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        assert cv2.imwrite(str(path), image)
        images[name] = image[..., ::-1].copy()
    return images


def test_predicts_readable_files_and_reports_the_rest(exported_demo, tmp_path):
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(inputs / "a.png"), image)
    cv2.imwrite(str(inputs / "b.jpg"), image)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    messages = []
    failed = predict_files(str(export_dir), str(inputs), str(tmp_path / "out"), log=messages.append)
    assert list(failed) == [str(inputs / "broken.png")]
    assert any("broken.png" in m for m in messages)
    labels = cv2.imread(str(tmp_path / "out" / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, reference_labels(export_dir, image[..., ::-1].copy()))
    assert cv2.imread(str(tmp_path / "out" / "b_overlay.png")).shape == (20, 30, 3)
    assert messages[-1].startswith("Wrote the predictions of 2 of 3 images")


def test_an_image_the_signature_refuses_is_reported_by_what_is_wrong(exported_demo, tmp_path):
    """The signature's errors (in-graph checks, decoding) reach predict as "Graph execution
    error:" followed by a node name; the report is the line that says what is wrong."""
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "text.png").write_bytes(b"hello\n")
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    (inputs / "cut.png").write_bytes(encoded.tobytes()[:len(encoded) // 2])
    messages = []
    failed = predict_files(str(export_dir), str(inputs), str(tmp_path / "out"), log=messages.append)
    assert failed == {str(inputs / "cut.png"): f"Invalid PNG data, size {len(encoded) // 2}",
                      str(inputs / "text.png"): "Unknown image file format: image_bytes[0] (6 bytes) is not a "
                                                "JPEG, PNG, GIF or BMP image"}
    assert f"failed {inputs / 'text.png'}: Unknown image file format" in messages[1]


def test_overlay_blends_palette_colours():
    image = np.full((1, 2, 3), 100, np.uint8)
    out = overlay(image, np.array([[0, 1]]), [(0, 0, 0), (200, 100, 0)], alpha=0.5)
    np.testing.assert_array_equal(out, [[[50, 50, 50], [150, 100, 50]]])


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_inputs(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("output", ["IN", "IN/predictions", "IN/sub", "EXPORT", "IN/a.png", "single:IN"])
def test_output_into_the_inputs_is_refused_and_nothing_is_written(exported_demo, tmp_path, output):
    """--output equal to --input, inside its tree, in the SavedModel, or where an output would be
    an input file: ValueError (one `error:` line, exit status 2), every input file as it was."""
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    write_images(inputs, ["a.png", "sub/b.png"])
    input_path = inputs / "a.png" if output.startswith("single:") else inputs
    output = output.removeprefix("single:").replace("IN", str(inputs)).replace("EXPORT", str(export_dir))
    before_inputs, before_export = tree_digest(inputs), tree_digest(export_dir)
    with pytest.raises(ValueError, match="predict never writes into its inputs"):
        predict_files(str(export_dir), str(input_path), output, log=lambda line: None)
    assert tree_digest(inputs) == before_inputs and tree_digest(export_dir) == before_export


def test_command_with_output_equal_to_input_exits_2_and_keeps_the_images(exported_demo, tmp_path, run_command):
    """The issue's case: `--input=DIR --output=DIR` overwrote the images with label maps."""
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    write_images(inputs, ["a.png", "b.png"])
    before = tree_digest(inputs)
    result = run_command(PREDICT, f"--saved_model={export_dir}", f"--input={inputs}", f"--output={inputs}")
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "predict never writes into its inputs" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and tree_digest(inputs) == before


def test_images_sharing_a_name_get_distinct_outputs(exported_demo, tmp_path):
    """a.png and a.bmp share a stem, a.png's overlay would be a_overlay.png's labels, and
    sub/a.png has a.png's name in a subfolder: every image gets its own two files, holding its own
    labels and overlay."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "out"
    images = write_images(inputs, ["a.png", "a.bmp", "a_overlay.png", "sub/a.png"])
    messages = []
    assert not predict_files(str(export_dir), str(inputs), str(out), log=messages.append)
    expected = {"a.png": "a.png", "a.bmp": "a.bmp", "a_overlay.png": "a_overlay.png", "sub/a.png": "sub/a"}
    assert set(tree_digest(out)) == {f"{name}{suffix}" for name in expected.values()
                                    for suffix in (".png", "_overlay.png")}
    palette = predict._load_palette(str(export_dir))
    for source, name in expected.items():
        labels = reference_labels(export_dir, images[source])
        np.testing.assert_array_equal(cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED), labels, err_msg=source)
        written_overlay = cv2.imread(str(out / f"{name}_overlay.png"))[..., ::-1]
        np.testing.assert_array_equal(written_overlay, overlay(images[source], labels, palette), err_msg=source)
    assert messages[-1].startswith("Wrote the predictions of 4 of 4 images")


def test_failed_writes_and_reads_are_named_counted_and_exit_1(exported_demo, tmp_path, run_command):
    """cv2.imwrite only returns False: a write that fails (here, the label file's path is a folder,
    which --overwrite lets through the check that nothing exists there) names the image and why, as
    an unreadable image does; neither is counted; exit status 1."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_images(inputs, ["a.png", "b.png"])
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (out / "a.png").mkdir(parents=True)
    result = run_command(PREDICT, f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}", "--overwrite")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    (failure,) = [line for line in lines if str(inputs / "a.png") in line]
    assert "Is a directory" in failure, failure
    assert any(str(inputs / "broken.png") in line for line in lines), lines
    assert "Wrote the predictions of 1 of 3 images" in result.stdout and "2 failed" in result.stdout
    assert (out / "b.png").is_file() and (out / "b_overlay.png").is_file()


def test_the_command_serves_with_the_onednn_weight_cache_and_the_same_labels(exported_demo, tmp_path, run_command):
    """The command turns oneDNN's weight cache on (it only serves); its labels equal this
    process's, which runs without it."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "out"
    images = write_images(inputs, ["a.png", "b.png", "c.png"], size=(33, 41))
    result = run_command(PREDICT, f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "oneDNN weight cache on (set by deeplab-tf for serving)" in result.stdout
    for name, image in images.items():
        np.testing.assert_array_equal(cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED),
                                      reference_labels(export_dir, image), err_msg=name)


@pytest.mark.parametrize("case", ["not_a_saved_model", "output_under_a_file"])
def test_a_wrong_saved_model_or_output_folder_is_a_user_error(exported_demo, tmp_path, case):
    """ValueError or OSError naming the flag (one `error:` line, exit status 2), not a raw traceback."""
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    write_images(inputs, ["a.png"])
    (tmp_path / "a_file").write_text("not a folder")
    saved_model, output, message = {
        "not_a_saved_model": (inputs, tmp_path / "out", "is not a readable SavedModel"),
        "output_under_a_file": (export_dir, tmp_path / "a_file" / "out", "cannot create --output .*: Not a directory"),
    }[case]
    with pytest.raises((ValueError, OSError), match=message):
        predict_files(str(saved_model), str(inputs), str(output), log=lambda line: None)


def test_existing_files_in_the_output_stop_the_command_before_any_work(exported_demo, tmp_path, run_command):
    """The report's case: a folder of the user's own files as --output. Exit status 2, one line
    naming the first file that would be replaced, every file as it was, nothing written."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "mine"
    write_images(inputs, ["00000.png", "00001.png"])
    out.mkdir()
    (out / "00000.png").write_text("my label map, hand-made")
    (out / "00001_overlay.png").write_bytes((inputs / "00001.png").read_bytes())
    before = tree_digest(out)
    result = run_command(PREDICT, f"--saved_model={export_dir}", f"--input={inputs}", f"--output={out}")
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {out / '00000.png'} exists (and 1 more of the files to write) and is not replaced: "
        "choose another --output, or pass --overwrite to replace the files this command writes"], result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(out) == before


def test_overwrite_replaces_the_outputs_and_nothing_else(exported_demo, tmp_path):
    """A rerun into the same --output (its files are not told from the user's) needs --overwrite,
    which replaces the label PNGs and overlays it writes and keeps every other file."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "out"
    images = write_images(inputs, ["a.png"])
    out.mkdir()
    (out / "a.png").write_text("stale")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="a.png exists and is not replaced"):
        predict_files(str(export_dir), str(inputs), str(out), log=lambda line: None)
    assert not predict_files(str(export_dir), str(inputs), str(out), log=lambda line: None, overwrite=True)
    np.testing.assert_array_equal(cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED),
                                  reference_labels(export_dir, images["a.png"]))
    assert sorted(tree_digest(out)) == ["a.png", "a_overlay.png", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def save_signature(folder, batch_size, outputs):
    """Saves a SavedModel whose serving_default takes image_bytes [batch_size] and returns `outputs`
    (zeros of the documented dtypes): a stand-in for an export of other options."""
    values = {"labels": lambda n: tf.zeros([n, 2, 2], tf.int32), "probabilities": lambda n: tf.zeros([n, 2, 2, 3])}

    @tf.function(input_signature=[tf.TensorSpec([batch_size], tf.string, name="image_bytes")])
    def serve(image_bytes):
        return {name: values[name](tf.size(image_bytes)) for name in outputs}

    tf.saved_model.save(tf.Module(), str(folder), signatures={"serving_default": serve})
    return folder


@pytest.mark.parametrize("batch_size, outputs, message", [
    (None, ("probabilities",), "its serving_default returns probabilities, not labels: export it with labels among "
                               "its --outputs"),
    (2, ("labels",), "takes batches of exactly 2 images; predict sends one at a time: export it without --batch_size"),
])
def test_an_export_predict_cannot_use_is_refused_before_any_image_is_read(tmp_path, batch_size, outputs, message):
    """An export with --outputs=probabilities (before: KeyError 'labels') or a fixed --batch_size=2
    (before: every image failed): ValueError naming the SavedModel, no output folder made."""
    saved_model = save_signature(tmp_path / "export", batch_size, outputs)
    write_images(tmp_path / "in", ["a.png"])
    with pytest.raises(ValueError, match=rf"^--saved_model '{saved_model}'.*{re.escape(message)}"):
        predict_files(str(saved_model), str(tmp_path / "in"), str(tmp_path / "out"), log=lambda line: None)
    assert not (tmp_path / "out").exists()
    assert predict.load_serving(str(save_signature(tmp_path / "one", 1, ("labels",))))  # a batch of 1 is served


def test_an_output_that_would_be_a_mirrored_subfolder_takes_the_image_extension(exported_demo, tmp_path):
    """The report's case: q.jpg's label q.png and the folder q.png/ mirroring IN/q.png/ (before:
    "[Errno 17] File exists" for one image). Both images done, each to its own files."""
    _, _, export_dir = exported_demo
    inputs, out = tmp_path / "in", tmp_path / "out"
    write_images(inputs, ["q.jpg", "q.png/img.png"])
    assert not predict_files(str(export_dir), str(inputs), str(out), log=lambda line: None)
    assert sorted(tree_digest(out)) == ["q.jpg.png", "q.jpg_overlay.png", "q.png/img.png", "q.png/img_overlay.png"]


def test_outputs_that_are_a_folder_even_with_the_extension_are_refused_naming_the_image(tmp_path):
    files = [str(tmp_path / name) for name in ("a.jpg", "a.png", "a.jpg.png/b.png")]
    with pytest.raises(ValueError, match=rf"^cannot name the outputs of {re.escape(files[0])}: a.jpg.png or "
                                         r"a.jpg_overlay.png is also a folder of outputs"):
        predict.output_names(files, str(tmp_path))
