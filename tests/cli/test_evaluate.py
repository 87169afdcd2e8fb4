"""The evaluator end to end: a SavedModel and its checkpoint agree on real CamVid val images,
the command line writes every report, and the streaming loop's CRF columns and worst images."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import keras
import tensorflow as tf

from deeplab_tf.data.dataset_info import DatasetInfo
from deeplab_tf.evaluation.evaluator import WorstImages, evaluate

pytestmark = pytest.mark.integration

TINY = (
    "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
    "data.max_examples=3"
)


@pytest.fixture(scope="module")
def camvid_export(camvid_dir, tmp_path_factory):
    """A tiny camvid_mnv2_v3plus (3 val images) with random weights saved as a training
    checkpoint, and its SavedModel: (experiment, checkpoint prefix, export dir). Training is
    skipped to keep the test fast; the weights only need to be the same on both sides."""
    from deeplab_tf.assembly import assemble
    from deeplab_tf.training.checkpoints import model_weights
    from deeplab_tf.config import apply_overrides
    from experiments import get_experiment
    from export.export_saved_model import export_saved_model

    root = tmp_path_factory.mktemp("camvid_eval")
    experiment = apply_overrides(get_experiment("camvid_mnv2_v3plus"), [TINY, f"data.data_dir='{camvid_dir}'"])
    keras.utils.set_random_seed(0)
    model = assemble(experiment).model
    prefix = tf.train.Checkpoint(model_weights=model_weights(model)).write(str(root / "ckpt"))
    export_saved_model(experiment, prefix, str(root / "export"), log=lambda line: None)
    return experiment, prefix, root / "export"


def test_saved_model_and_checkpoint_give_the_same_miou_on_camvid_val(camvid_export):
    from deeplab_tf.assembly import assemble
    from deeplab_tf.training.checkpoints import restore_model
    from deeplab_tf.data.pipeline import build_eval_dataset
    from deeplab_tf.evaluation.inference import keras_scorer, saved_model_scorer

    experiment, prefix, export_dir = camvid_export
    parts = assemble(experiment)
    restore_model(parts.model, prefix)
    dataset = build_eval_dataset(experiment.data, "val", parts.normalize)
    results = {}
    for name, scorer in (("checkpoint", keras_scorer(parts.model, parts.normalize)),
                         ("saved_model", saved_model_scorer(str(export_dir)))):
        results[name] = evaluate(lambda batch: scorer(batch["pixels"]), dataset, parts.info, log=lambda line: None,
                                 trimap_widths=(1, 10))
    checkpoint, saved_model = results["checkpoint"], results["saved_model"]
    assert checkpoint["num_images"] == 3 and checkpoint["names_sha1"] == saved_model["names_sha1"]
    assert saved_model["miou"] == pytest.approx(checkpoint["miou"], abs=1e-4)
    assert saved_model["trimap"]["miou"] == pytest.approx(checkpoint["trimap"]["miou"], abs=1e-4, nan_ok=True)


def test_command_line_writes_every_report(camvid_export, tmp_path):
    experiment, _, export_dir = camvid_export
    command = [sys.executable, "-m", "deeplab_tf.cli.evaluate", "--experiment=camvid_mnv2_v3plus",
               f"--override={TINY}", f"--override=data.data_dir='{experiment.data.data_dir}'",
               "--override=eval.output_stride=8",  # how checkpoints are evaluated: a SavedModel has its stride
               f"--saved_model={export_dir}", f"--output_dir={tmp_path / 'out'}", "--trimap_widths=1,3,5",
               "--num_visualizations=2", "--scales=0.75,1.0", "--flip"]
    subprocess.run(command, check=True, capture_output=True)
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["confusion.png", "eval.json", "report.md", "trimap.png", "worst"]
    assert len(os.listdir(out / "worst")) == 2
    results = json.loads((out / "eval.json").read_text())
    assert results["config"]["eval"]["flip"] is True
    assert results["model"]["kind"] == "saved_model" and results["data"]["split"] == "val"
    assert results["trimap"]["widths"] == [1, 3, 5] and results["num_images"] == 3
    assert "| mIoU |" in (out / "report.md").read_text()
    # Again into the same folder, one overlay and no trimap: none of the first run's pictures is
    # left beside the new eval.json; a file of the user's is.
    (out / "worst" / "notes.txt").write_text("mine")
    again = [arg for arg in command if not arg.startswith(("--trimap_widths=", "--num_visualizations="))]
    subprocess.run([*again, "--trimap_widths=", "--num_visualizations=1"], check=True, capture_output=True)
    results = json.loads((out / "eval.json").read_text())
    assert "trimap" not in results and len(results["worst_images"]) == 1
    assert sorted(os.listdir(out)) == ["confusion.png", "eval.json", "report.md", "worst"]
    stem = os.path.splitext(os.path.basename(results["worst_images"][0]["name"]))[0]
    assert sorted(os.listdir(out / "worst")) == [f"00_{stem}.png", "notes.txt"]
    assert (out / "worst" / "notes.txt").read_text() == "mine"


def fake_dataset(num_images=5, size=(6, 8)):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(num_images, *size)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices({
        "pixels": rng.integers(0, 256, size=(num_images, *size, 3), dtype=np.uint8),
        "label": labels,
        "name": [f"image{i}" for i in range(num_images)],
    }).batch(2), labels


def test_refine_hook_gives_before_and_after_columns_and_worst_images_are_kept():
    dataset, labels = fake_dataset()
    info = DatasetInfo("fake", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    rng = np.random.default_rng(1)
    noisy = {f"image{i}".encode(): np.eye(3)[np.where(rng.random(labels[i].shape) < 0.2 * i, (labels[i] + 1) % 3, labels[i])]
             for i in range(len(labels))}  # image i has about 20 * i % of its pixels wrong
    predict = lambda batch: np.stack([noisy[name] for name in batch["name"].numpy()])  # noqa: E731
    everything_a = lambda pixels, probabilities: np.eye(3)[np.zeros(probabilities.shape[:2], int)]  # noqa: E731
    worst = WorstImages(2)
    results = evaluate(predict, dataset, info, log=lambda line: None, worst=worst)
    assert "before_crf" not in results and results["num_images"] == 5
    assert [entry["name"] for entry in worst.entries()] == ["image4", "image3"]
    assert worst.entries()[0]["prediction"].shape == labels[0].shape
    as_labels = evaluate(lambda batch: np.argmax(predict(batch), -1), dataset, info, log=lambda line: None)
    assert as_labels["miou"] == results["miou"]  # `predict` may return labels instead of probabilities
    refined = evaluate(predict, dataset, info, log=lambda line: None, refine=everything_a)
    assert refined["before_crf"]["miou"] == pytest.approx(results["miou"])
    assert refined["pixel_accuracy"] == pytest.approx(np.mean(labels == 0))
