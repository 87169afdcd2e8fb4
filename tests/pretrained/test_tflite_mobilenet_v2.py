"""The official TFLite DeepLabv3 MobileNetV2 (depth 0.5, OS 8) imported into the
`voc_v3_mnv2_dm05_official` experiment's model computes what the TFLite interpreter computes:
same logits (the file's output, [1, 257, 257, 21] after its align-corners resize, and the 33x33
`logits/semantic/BiasAdd` before it), same labels, on the two VOC photos and four CamVid val
images resized to 257x257 as the TFLite app feeds them; the loader fails in one line on a tensor
it cannot place."""

import keras
import numpy as np
import pytest
from PIL import Image

import experiments
from deeplab_tf.backbones import get_normalizer
from deeplab_tf.models.fold_batch_norm import count_batch_norms
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.pretrained.official_mobilenet_v2 import build_official_mobilenet_v2
from deeplab_tf.pretrained.source_tensors import MissingTensorError, TensorShapeError
from deeplab_tf.pretrained.tflite_file import read_tflite_model, run_tflite
from deeplab_tf.pretrained.tflite_mobilenet_v2 import INPUT_SIZE, load_tflite_mobilenet_v2
from deeplab_tf.pretrained.official_weights import UnusedTensorError

from tests.pretrained.conftest import CAMVID_IMAGES
from tests.pretrained.weight_edits import edited, fails_and_sets_nothing

EXPERIMENT = experiments.get_experiment("voc_v3_mnv2_dm05_official")
FETCHES = ("logits/semantic/BiasAdd", "ResizeBilinear_3")


@pytest.fixture(scope="module")
def official(tflite_path):
    return read_tflite_model(tflite_path)


@pytest.fixture(scope="module")
def model(official):
    model = build_official_mobilenet_v2(EXPERIMENT.model)
    load_tflite_mobilenet_v2(model, official.weights)
    return model


@pytest.fixture(scope="module")
def inputs(voc_photos, camvid_photos):
    """[(name, float32 [1, 257, 257, 3])]: each image resized (PIL bilinear) to 257x257 and
    normalised by the experiment's normaliser (x / 127.5 - 1, the app's (x - 127.5) / 127.5)."""
    photos = [(name, Image.fromarray(image)) for name, image in voc_photos] + camvid_photos
    normalize = get_normalizer(EXPERIMENT.model.backbone)
    return [(name, np.asarray(normalize(np.asarray(image.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR),
                                                   np.float32)[None])))
            for name, image in photos]


@pytest.fixture(scope="module")
def comparisons(tflite_path, model, inputs):
    """{name: (interpreter fetches, our 33x33 logits, our 257x257 logits)}."""
    logits_model = keras.Model(model.input, [model.get_layer(CLASSIFIER_LAYER).output, model.output])
    return {name: (run_tflite(tflite_path, x, FETCHES), *(np.asarray(y) for y in logits_model(x)))
            for name, x in inputs}


def test_every_float_tensor_has_its_place_and_no_batch_norm_is_left(model, official):
    """55 layers x (kernel, bias); the 3 tensors left are the int32 resize sizes."""
    assert load_tflite_mobilenet_v2(model, official.weights) == 110
    assert len(official.weights) == 113
    assert count_batch_norms(model) == 0


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
@pytest.mark.parametrize("fetch, ours", [("logits/semantic/BiasAdd", 1), ("ResizeBilinear_3", 2)])
def test_logits_equal_the_interpreter(inputs, comparisons, index, fetch, ours):
    name = inputs[index][0]
    reference = comparisons[name][0][fetch]
    logits = comparisons[name][ours]
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= 1e-4 * np.abs(reference).max(), name


@pytest.mark.parametrize("index", range(2 + CAMVID_IMAGES))
def test_labels_equal_the_interpreter_where_the_top2_margin_exceeds_1e_3(inputs, comparisons, index):
    name = inputs[index][0]
    reference, _, logits = comparisons[name]
    top2 = np.sort(reference["ResizeBilinear_3"][0], axis=-1)[..., -2:]
    decided = top2[..., 1] - top2[..., 0] > 1e-3
    assert decided.mean() > 0.99, name
    np.testing.assert_array_equal(np.argmax(logits[0], -1)[decided],
                                  np.argmax(reference["ResizeBilinear_3"][0], -1)[decided], err_msg=name)


def test_bird_labels_agree_with_its_voc_mask(comparisons, bird):
    """The mask resized (nearest) to 257x257; the interpreter agrees on 96.7% (notes 2.1)."""
    _, mask = bird
    mask = np.asarray(Image.fromarray(mask).resize((INPUT_SIZE, INPUT_SIZE), Image.NEAREST))
    assert (np.argmax(comparisons["bird"][2][0], -1) == mask).mean() >= 0.95


def test_a_missing_tensor_fails_naming_it(model, official):
    name = "MobilenetV2/expanded_conv_7/depthwise/depthwise_bias"
    fails_and_sets_nothing(load_tflite_mobilenet_v2, model, edited(official.weights, remove=[name]), MissingTensorError, f"no tensor '{name}'")


def test_a_wrongly_shaped_tensor_fails_naming_both_shapes(model, official):
    name = "MobilenetV2/expanded_conv_1/project/weights"
    tensors = edited(official.weights, add={name: np.zeros((16, 1, 1, 48), np.float32)})
    fails_and_sets_nothing(load_tflite_mobilenet_v2, model, tensors, TensorShapeError, r"\(16, 1, 1, 48\), expected \(12, 1, 1, 48\)")


def test_a_float_tensor_with_no_place_in_the_model_fails(model, official):
    tensors = edited(official.weights, add={"aspp1/weights": np.zeros((256, 3, 3, 160), np.float32)})
    fails_and_sets_nothing(load_tflite_mobilenet_v2, model, tensors, UnusedTensorError, "1 float tensors .* no place in the model: 'aspp1/")
