"""A published model folder passed where a checkpoint is expected (`restore_model`, hence
training's `train.init_checkpoint`, evaluate's and export's `--checkpoint`) is imported into the
experiment's own model, batch norms included."""

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model
from deeplab_tf.pretrained.official_mobilenet_v2 import preprocess
from deeplab_tf.pretrained.published import is_published_model
from deeplab_tf.pretrained.tfjs_graph import read_tfjs_graph_model
from deeplab_tf.training.checkpoints import restore_model

OFFICIAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "official_deeplab")
TFJS = os.path.join(OFFICIAL, "tfjs_mnv2_voc_trainval")


@pytest.fixture(scope="module")
def tfjs_dir():
    if not os.path.isfile(os.path.join(TFJS, "model.json")):
        pytest.skip(f"official TF.js model not found at {os.path.abspath(TFJS)}")
    return TFJS


def test_published_folder_is_told_from_checkpoints(tfjs_dir, tmp_path):
    assert is_published_model(tfjs_dir) and is_published_model(os.path.join(tfjs_dir, "model.json"))
    assert not is_published_model(str(tmp_path))


def test_voc_model_with_batch_norms_labels_the_bird(tfjs_dir):
    """DeepLabv3 MobileNetV2 as `build_model` makes it (batch norms, Keras padding, no align
    corners): the official weights still label the bird photo as its VOC mask does."""
    model = build_model(ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", output_stride=8, atrous_rates=(),
                                    aspp_filters=256), 21).model
    restore_model(model, tfjs_dir)
    image = np.array(Image.open(os.path.join(OFFICIAL, "images", "bird_segmentation.bmp")).convert("RGB"))
    mask = np.array(Image.open(os.path.join(OFFICIAL, "images", "bird_segmentation_mask.bmp")))
    logits = model(preprocess(image), training=False).numpy()[0, :image.shape[0], :image.shape[1]]
    labels = logits.argmax(-1)
    assert (labels == mask).mean() >= 0.95
    assert (labels == 3).sum() > 0.05 * labels.size  # VOC class 3: bird


def test_transfer_experiment_starts_from_the_voc_weights(tfjs_dir):
    experiment = experiments.get_experiment("camvid_mnv2_voc_transfer")
    experiment = dataclasses.replace(experiment, data=dataclasses.replace(experiment.data, dataset="synthetic_shapes"))
    parts = assemble(experiment)
    classifier = parts.model.get_layer("logits").get_weights()[0].copy()
    lines = []
    assert "TF.js graph model" in restore_model(parts.model, tfjs_dir, log=lines.append)
    assert lines == ["Classifier 'logits' left at its initialisation: 21 pretrained classes, 4 here"]
    np.testing.assert_array_equal(parts.model.get_layer("logits").get_weights()[0], classifier)
    official = read_tfjs_graph_model(tfjs_dir).weights
    first = parts.model.get_layer("mobilenet_v2_os16").get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(first, official["MobilenetV2/Conv/Conv2D/merged_input"])
    beta = parts.model.get_layer("mobilenet_v2_os16").get_layer("bn_Conv1").beta.numpy()
    np.testing.assert_array_equal(beta, official["MobilenetV2/Conv/BatchNorm/FusedBatchNorm/Offset"])
