"""A published model folder passed where a checkpoint is expected (`restore_model`, hence
training's `train.init_checkpoint`, evaluate's and export's `--checkpoint`) is imported into the
experiment's own model, batch norms included. One that leaves layers at their initialisation (a
classifier of other classes, a decoder it lacks) only starts a training (`partial`): elsewhere it
is refused, naming them."""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf
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


def transfer_model():
    """`camvid_mnv2_voc_transfer`'s model (DeepLabv3+, a decoder the VOC model lacks), on 4 classes."""
    experiment = experiments.get_experiment("camvid_mnv2_voc_transfer")
    experiment = dataclasses.replace(experiment, data=dataclasses.replace(experiment.data, dataset="synthetic_shapes"))
    return assemble(experiment, with_data=False)


def test_transfer_experiment_starts_from_the_voc_weights(tfjs_dir):
    parts = transfer_model()
    classifier = parts.model.get_layer("logits").get_weights()[0].copy()
    lines = []
    assert "TF.js graph model" in restore_model(parts.model, tfjs_dir, log=lines.append, partial=True)
    assert lines == ["Classifier 'logits' left at its initialisation: 21 pretrained classes, 4 here"]
    np.testing.assert_array_equal(parts.model.get_layer("logits").get_weights()[0], classifier)
    official = read_tfjs_graph_model(tfjs_dir).weights
    first = parts.model.get_layer("mobilenet_v2_os16").get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(first, official["MobilenetV2/Conv/Conv2D/merged_input"])
    beta = parts.model.get_layer("mobilenet_v2_os16").get_layer("bn_Conv1").beta.numpy()
    np.testing.assert_array_equal(beta, official["MobilenetV2/Conv/BatchNorm/FusedBatchNorm/Offset"])


def test_official_tflite_file_loads_into_its_experiment():
    """The dm 0.5 TFLite file into `voc_v3_mnv2_dm05_official`'s model (batch norms included):
    its logits at 257x257 equal the interpreter's (1e-4 of the largest)."""
    path = os.path.join(OFFICIAL, "tflite_mnv2_dm05_voc", "deeplabv3_257_mv_gpu.tflite")
    if not os.path.isfile(path):
        pytest.skip(f"official TFLite model not found at {os.path.abspath(path)}")
    from deeplab_tf.pretrained.tflite_file import run_tflite

    model = build_model(experiments.get_experiment("voc_v3_mnv2_dm05_official").model, 21).model
    assert is_published_model(path) and "TFLite model" in restore_model(model, path)
    image = np.array(Image.open(os.path.join(OFFICIAL, "images", "bird_segmentation.bmp")).convert("RGB").resize((257, 257)))
    inputs = (image[None].astype(np.float32) - 127.5) / 127.5
    (expected,) = run_tflite(path, inputs).values()
    actual = model(inputs, training=False).numpy()
    assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("layout", ["prefix", "folder"])
def test_tf1_checkpoint_of_official_names_loads_into_the_transfer_model(tmp_path, layout):
    """A zoo-style TF1 checkpoint (official variable names, written here: no official one is
    available) passed as `init_checkpoint` (`partial`): every weight but the 21-class classifier is
    set; without `partial` (export, evaluation) it is refused, naming the classifier."""
    from tests.pretrained.test_tf1_deeplab import _random_official, write_checkpoint

    official_model = build_model(ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", output_stride=16,
                                             atrous_rates=(), aspp_filters=256), 21).model
    official = _random_official(official_model, seed=3)
    prefix = write_checkpoint(str(tmp_path / "model.ckpt"), official)
    model = build_model(ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", output_stride=8, atrous_rates=(),
                                    aspp_filters=256), 5).model
    lines, path = [], prefix if layout == "prefix" else str(tmp_path)
    with pytest.raises(ValueError, match=rf"^{re.escape(path)} leaves layers of model .* at their random "
                                         r"initialisation \(1: logits\)"):
        restore_model(model, path)
    loaded = restore_model(model, path, log=lines.append, partial=True)
    assert loaded == f"TF1 checkpoint {prefix} (270 tensors)"
    assert lines == ["Classifier 'logits' left at its initialisation: 21 pretrained classes, 5 here"]
    kernel = model.get_layer("mobilenet_v2_os8").get_layer("block_3_depthwise").get_weights()[0]
    np.testing.assert_array_equal(kernel, official["MobilenetV2/expanded_conv_3/depthwise/depthwise_weights"])


def test_our_own_checkpoints_are_not_taken_for_published_ones(tmp_path):
    from deeplab_tf.training.checkpoints import model_weights

    model = build_model(ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2", backbone_alpha=0.35,
                                    atrous_rates=(), aspp_filters=8), 3).model
    prefix = tf.train.Checkpoint(model_weights=model_weights(model)).write(str(tmp_path / "ckpt"))
    assert not is_published_model(prefix) and not is_published_model(str(tmp_path))
    assert restore_model(model, prefix) == prefix


def test_a_published_model_that_leaves_layers_uninitialised_is_refused_naming_them(tfjs_dir):
    """Export and evaluation restore without `partial`: the VOC model leaves the transfer model's
    decoder and 4-class classifier random, which before exported silently (2-3% pixel accuracy)."""
    left = ("decoder_conv1_bn, decoder_conv1_conv, decoder_conv2_bn, decoder_conv2_conv, decoder_low_level_bn and 2 "
            "more")
    with pytest.raises(ValueError, match=rf"^{re.escape(tfjs_dir)} leaves layers of model '\w+' at their random "
                                         rf"initialisation \(7: {left}\): it can only start a training of this experiment; "
                                         rf"train from it with --override=train.init_checkpoint={re.escape(tfjs_dir)}, "
                                         r"then use that run$"):
        restore_model(transfer_model().model, tfjs_dir)
