"""The official TF.js DeepLabv3 MobileNetV2 imported into the `voc_v3_mnv2_official` experiment's
model computes the official graph: same 65x65 logits (`logits/semantic/BiasAdd`), and the
experiment's evaluation scorer (`eval.pad_to_size` padding, softmax, argmax) gives the same labels,
on the two VOC photos and four CamVid val images; the loader fails in one line on a tensor it
cannot place."""

import keras
import numpy as np
import pytest
from PIL import Image

import experiments
from deeplab_tf.backbones import get_normalizer
from deeplab_tf.evaluation.inference import keras_scorer, padded
from deeplab_tf.models.fold_batch_norm import count_batch_norms
from deeplab_tf.pretrained.frozen_graph import run_image_graph
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.pretrained.official_mobilenet_v2 import CROP_SIZE, build_official_mobilenet_v2, preprocess
from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceFileError, TensorShapeError
from deeplab_tf.pretrained.tfjs_graph import read_tfjs_graph_model
from deeplab_tf.pretrained.tfjs_mobilenet_v2 import UnusedTensorError, load_tfjs_mobilenet_v2

from tests.pretrained.conftest import CAMVID_IMAGES
from tests.pretrained.weight_edits import edited, fails_and_sets_nothing

EXPERIMENT = experiments.get_experiment("voc_v3_mnv2_official")
OFFICIAL_FETCHES = ("logits/semantic/BiasAdd:0", "ResizeBilinear_3:0", "SemanticPredictions:0", "sub_7:0")


@pytest.fixture(scope="module")
def official(tfjs_model_dir):
    return read_tfjs_graph_model(tfjs_model_dir)


@pytest.fixture(scope="module")
def model(official):
    model = build_official_mobilenet_v2(EXPERIMENT.model)
    load_tfjs_mobilenet_v2(model, official.weights)
    return model


def _resized_to_513(image):
    """Returns the PIL `image` with its larger side resized to 513 as the official demo does
    (`resize_ratio = 513 / max(w, h)`, PIL antialias), as uint8 [H, W, 3]."""
    ratio = CROP_SIZE / max(image.size)
    return np.asarray(image.resize((int(ratio * image.size[0]), int(ratio * image.size[1])), Image.LANCZOS))


@pytest.fixture(scope="module")
def images(voc_photos, camvid_photos):
    """[(name, RGB uint8 [H, W, 3], H, W <= 513)]: bird (513x513), dog (128x128), 4 CamVid (384x513)."""
    return voc_photos + [(name, _resized_to_513(image)) for name, image in camvid_photos]


def _labels(scorer, image):
    """Returns the argmax [H, W] of `scorer`'s probabilities for one uint8 image [H, W, 3]."""
    return np.argmax(np.asarray(scorer(image[None]))[0], axis=-1)


@pytest.fixture(scope="module")
def comparisons(official, model, images):
    """{name: (official fetches, our 65x65 logits [1, 65, 65, 21], our labels [H, W])}: the labels
    of the experiment's evaluation scorer (`keras_scorer` on 513x513 mean-padded images)."""
    logits_model = keras.Model(model.input, model.get_layer(CLASSIFIER_LAYER).output)
    scorer = padded(keras_scorer(model, get_normalizer(EXPERIMENT.model.backbone)), EXPERIMENT.eval.pad_to_size,
                    EXPERIMENT.eval.pad_value)
    results = {}
    for name, image in images:
        reference = run_image_graph(official.graph_def, image, OFFICIAL_FETCHES, source="official TF.js")
        results[name] = (reference, np.asarray(logits_model(preprocess(image))), _labels(scorer, image))
    return results


def test_every_official_weight_has_its_place_and_no_batch_norm_is_left(model, official):
    """127 weight tensors + 3 preprocessing constants used; the 18 left are int32 shape constants."""
    assert load_tfjs_mobilenet_v2(model, official.weights) == 130
    assert sum(value.dtype == np.int32 for value in official.weights.values()) == len(official.weights) - 130
    assert count_batch_norms(model) == 0


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_logits_equal_the_official_graph(images, comparisons, index):
    name, image = images[index]
    reference, logits, _ = comparisons[name]
    official_logits = reference["logits/semantic/BiasAdd:0"]
    assert logits.shape == official_logits.shape == (1, 65, 65, 21)
    difference = np.abs(logits - official_logits).max()
    assert difference <= 1e-4 * np.abs(official_logits).max(), name


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_labels_equal_the_official_graph_where_the_top2_margin_exceeds_1e_3(images, comparisons, index):
    name, image = images[index]
    reference, _, labels = comparisons[name]
    height, width = image.shape[:2]
    top2 = np.sort(reference["ResizeBilinear_3:0"][0, :height, :width], axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-3
    official_labels = reference["SemanticPredictions:0"][0]
    assert labels.shape == official_labels.shape == (height, width)
    assert decided.mean() > 0.99, name
    np.testing.assert_array_equal(labels[decided], official_labels[decided], err_msg=name)


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_preprocess_equals_the_official_graph(images, comparisons, index):
    """Padding to 513x513 with 127.5 and x * 2/255 - 1: the official input of the first conv."""
    name, image = images[index]
    np.testing.assert_allclose(preprocess(image), comparisons[name][0]["sub_7:0"], rtol=0, atol=1e-6, err_msg=name)


def test_bird_labels_agree_with_its_voc_mask(comparisons, bird):
    _, mask = bird
    assert (comparisons["bird"][2] == mask).mean() >= 0.95


def test_a_missing_tensor_fails_naming_it(model, official):
    name = "MobilenetV2/expanded_conv_7/depthwise/BatchNorm/FusedBatchNorm/Scaled"
    fails_and_sets_nothing(load_tfjs_mobilenet_v2, model, edited(official.weights, remove=[name]), MissingTensorError, f"no tensor '{name}'")


def test_a_wrongly_shaped_tensor_fails_naming_both_shapes(model, official):
    name = "concat_projection/Conv2D/merged_input"
    tensors = edited(official.weights, add={name: np.zeros((1, 1, 256, 512), np.float32)})
    fails_and_sets_nothing(load_tfjs_mobilenet_v2, model, tensors, TensorShapeError, r"\(1, 1, 256, 512\), expected \(1, 1, 512, 256\)")


def test_a_float_tensor_with_no_place_in_the_model_fails(model, official):
    tensors = edited(official.weights, add={"aspp1/Conv2D/merged_input": np.zeros((3, 3, 320, 256), np.float32)})
    fails_and_sets_nothing(load_tfjs_mobilenet_v2, model, tensors, UnusedTensorError, "1 float tensors .* no place in the model: 'aspp1/")


def test_other_preprocessing_fails(model, official):
    tensors = edited(official.weights, add={"Reshape": np.full((1, 1, 3), 128.0, np.float32)})
    fails_and_sets_nothing(load_tfjs_mobilenet_v2, model, tensors, SourceFileError, "preprocessing constant 'Reshape'")


def test_preprocess_rejects_images_larger_than_513():
    with pytest.raises(ValueError, match="at most 513x513"):
        preprocess(np.zeros((514, 10, 3), np.uint8))
