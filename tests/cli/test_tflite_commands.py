"""The .tflite through the commands: `export.export_tflite` refuses a size it cannot serve in one
line, `evaluate --tflite` scores what the checkpoint scores, `predict --tflite` writes label maps
at each image's size (other sizes resized as documented), and a file that is no model of the
exporter, or lacks what is asked of it, ends in one `error:` line."""

import json

import cv2
import numpy as np
import pytest

from deeplab_tf.cli.predict import predict_files
from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter
from export.export_tflite import export_tflite

MAX_EXAMPLES = "data.max_examples=6"


@pytest.fixture(scope="module")
def demo_tflite(exported_demo, tmp_path_factory):
    """{"scores", "labels_only"}: the demo run's .tflite at the 128x128 of its images."""
    experiment, run, _ = exported_demo
    root = tmp_path_factory.mktemp("tflite_commands")
    paths = {"scores": str(root / "demo.tflite"), "labels_only": str(root / "labels.tflite")}
    export_tflite(experiment, str(run), paths["scores"], (128, 128), log=lambda line: None)
    export_tflite(experiment, str(run), paths["labels_only"], (128, 128), outputs=("labels",), log=lambda line: None)
    return paths


def test_export_refuses_a_size_before_building(exported_demo, run_command, tmp_path):
    _, run, _ = exported_demo
    result = run_command("export.export_tflite", f"--checkpoint={run}", f"--output={tmp_path / 'm.tflite'}",
                         "--input_size=10x300")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --input_size=10x300 cannot be served at output stride 16: the model runs at 10x300, and each "
        "side must be at least 16 pixels (smaller, the backbone's last feature map is empty)")
    assert not list(tmp_path.iterdir())


def test_evaluate_tflite_scores_what_the_checkpoint_scores(exported_demo, demo_tflite, run_command, tmp_path):
    """The command on the .tflite; the reference is the restored Keras model through the same
    evaluator, in this process."""
    from deeplab_tf.assembly import assemble
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.data.pipeline import build_eval_dataset
    from deeplab_tf.evaluation.evaluator import evaluate
    from deeplab_tf.evaluation.inference import keras_scorer
    from deeplab_tf.training.checkpoints import restore_model

    experiment, run, _ = exported_demo
    result = run_command("deeplab_tf.cli.evaluate", f"--model_dir={run}", f"--tflite={demo_tflite['scores']}",
                         f"--override={MAX_EXAMPLES}", "--trimap_widths=", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["num_images"] == 6
    assert (results["model"]["kind"], results["model"]["precision"], results["model"]["output_stride"]) == (
        "tflite", "float32", 16)
    experiment = apply_overrides(experiment, MAX_EXAMPLES)
    parts = assemble(experiment)
    restore_model(parts.model, str(run))
    scorer = keras_scorer(parts.model, parts.normalize)
    dataset = build_eval_dataset(experiment.data, experiment.data.eval_split, lambda pixels: pixels)
    reference = evaluate(lambda batch: scorer(batch["pixels"]), dataset, parts.info, log=lambda line: None,
                         trimap_widths=())
    assert results["miou"] == pytest.approx(reference["miou"], abs=1e-3)


def test_evaluate_refuses_a_file_without_probabilities(exported_demo, demo_tflite, run_command, tmp_path):
    _, run, _ = exported_demo
    result = run_command("deeplab_tf.cli.evaluate", f"--model_dir={run}", f"--tflite={demo_tflite['labels_only']}",
                         f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {demo_tflite['labels_only']} returns labels, not probabilities: export it with "
        "--outputs=labels,probabilities to evaluate it")


def test_predict_tflite_writes_labels_at_each_images_size(demo_tflite, tmp_path):
    rng = np.random.default_rng(0)
    images = {"same.png": rng.integers(0, 256, (128, 128, 3), np.uint8),
              "other.png": rng.integers(0, 256, (100, 150, 3), np.uint8)}
    (tmp_path / "in").mkdir()
    for name, image in images.items():
        cv2.imwrite(str(tmp_path / "in" / name), image[..., ::-1])
    failed = predict_files(None, str(tmp_path / "in"), str(tmp_path / "out"), log=lambda line: None,
                           tflite=demo_tflite["scores"])
    assert failed == {}
    segmenter = TFLiteSegmenter(demo_tflite["scores"])
    same = cv2.imread(str(tmp_path / "out" / "same.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(same, segmenter(images["same.png"])["labels"][0])
    other = cv2.imread(str(tmp_path / "out" / "other.png"), cv2.IMREAD_UNCHANGED)
    assert other.shape == (100, 150)
    np.testing.assert_array_equal(other, segmenter.labels(images["other.png"]))
    for name in ("same.png", "same_overlay.png", "other.png", "other_overlay.png"):  # PNG content, as named
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_predict_refuses_a_tflite_of_another_exporter(run_command, tmp_path):
    from tests.pretrained.conftest import OFFICIAL_DIR

    official = f"{OFFICIAL_DIR}/tflite_mnv2_dm05_voc/deeplabv3_257_mv_gpu.tflite"
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    result = run_command("deeplab_tf.cli.predict", f"--tflite={official}", f"--input={tmp_path / 'a.png'}",
                         f"--output={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --tflite: {official} has no serving_default signature taking 'images' (signatures: {{}}); "
        "export it with python -m export.export_tflite")
    with pytest.raises(ValueError, match=f"^--tflite: {tmp_path / 'a.png'} is not a TFLite flatbuffer"):
        predict_files(None, str(tmp_path / "a.png"), str(tmp_path / "out"), tflite=str(tmp_path / "a.png"))
    assert not (tmp_path / "out").exists()
