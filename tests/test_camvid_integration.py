"""End to end on real CamVid (../shared/data/camvid): train camvid_mnv2_v3plus for a few dozen
steps on crops, check the loss fell, evaluate on part of val, export, and check the export
reloaded in a fresh process predicts the Keras model's labels on real images (wherever the two
best classes are not tied to float rounding)."""

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.assembly import assemble
from deeplab_tf.training.checkpoints import restore_model
from deeplab_tf.config import apply_overrides
from deeplab_tf.data.pipeline import build_eval_dataset
from deeplab_tf.evaluation.evaluator import evaluate, model_label_predictor
from deeplab_tf.training.trainer import train
from experiments import get_experiment
from export.export_saved_model import export_saved_model

pytestmark = pytest.mark.integration

STEPS = 40
SMALL = (
    "model.backbone_alpha=0.35,model.aspp_filters=64,model.decoder_filters=64,model.low_level_filters=24,"
    f"data.crop_size=129,data.shuffle_buffer=64,train.batch_size=4,train.steps={STEPS},"
    "train.log_every=1,train.checkpoint_every=1000,train.base_learning_rate=0.02,model.batch_norm_momentum=0.9,"
    "train.warmup_steps=0,train.class_weighting=''"  # weighted losses are too noisy to compare in 40 steps
)


def test_train_evaluate_export_on_camvid(camvid_dir, tmp_path, fresh_process_predict):
    experiment = apply_overrides(get_experiment("camvid_mnv2_v3plus"), [SMALL, f"data.data_dir='{camvid_dir}'"])
    lines = []
    train(experiment, str(tmp_path / "run"), log=lines.append)
    losses = [float(line.split()[3]) for line in lines if line.startswith("step ")]
    assert len(losses) == STEPS
    assert np.mean(losses[-8:]) < 0.85 * np.mean(losses[:8]), losses

    eval_experiment = apply_overrides(experiment, "data.max_examples=6")
    parts = assemble(eval_experiment)
    restore_model(parts.model, str(tmp_path / "run"))
    dataset = build_eval_dataset(eval_experiment.data, "val", parts.normalize)
    results = evaluate(model_label_predictor(parts.model), dataset, parts.info, log=lambda line: None)
    assert results["num_images"] == 6 and len(results["per_class_iou"]) == 11
    assert 0.0 <= results["pixel_accuracy"] <= 1.0

    export_dir = tmp_path / "export"
    export_saved_model(experiment, str(tmp_path / "run"), str(export_dir), log=lambda line: None)
    batch = next(iter(dataset.unbatch().batch(2)))
    images = batch["pixels"].numpy()
    assert images.shape == (2, 360, 480, 3)
    logits = parts.model(batch["image"], training=False).numpy()
    expected = np.argmax(logits, axis=-1)
    out = fresh_process_predict(export_dir, images)
    # The export folds the batch norms into the convolutions, which moves the logits by float32
    # rounding (~1e-6 of the largest): a label may change only where the two best logits are
    # closer than 1e-4 of the largest (seen: 1 pixel of 345,600 after some test orders).
    top2 = np.sort(logits, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4 * np.abs(logits).max()
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(out["tensor_labels"][clear], expected[clear])
    np.testing.assert_array_equal(out["bytes_labels"][clear], expected[clear])
