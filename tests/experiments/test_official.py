"""The official DeepLabv3+ Xception-65 experiments of `experiments/official.py`: each assembles the
published network, a TF1 checkpoint written here under the official variable names (no zoo file
is available) loads into it through `load_published_model`, and the TF1 conventions the
experiment sets are in effect, checked against NumPy references written from the official code
(tensorflow/models research/deeplab: core/xception.py, core/feature_extractor.py, model.py):
the entry flow's `fixed_padding` (not TF's "SAME") at an even size, the logits' align-corners
upsampling, and the input scaling under which the mean padding is 0."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.backbones import get_normalizer
from deeplab_tf.layers.resize import ResizeToMatch
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.pretrained.published import load_published_model
from tests.pretrained.test_tf1_deeplab import COUNTS, _conv_bn_relu, _layer_output, _random_official, write_checkpoint

# Experiment -> (classes, official eval crop, zoo mIoU at OS 16, one scale): g3doc/model_zoo.md,
# pascal.md / cityscapes.md (`--eval_crop_size`).
OFFICIAL = {
    "voc_v3plus_xception65_official": (21, (513, 513), 82.20),
    "cityscapes_v3plus_xception65_official": (19, (1025, 2049), 78.79),
}
ENTRY_CONV = "xception_65/entry_flow/conv1_1"


def _unit_gain(official: dict) -> dict:
    """Returns `official` with every kernel divided by 0.5 * sqrt(fan-in), so that 65 layers of
    random N(0, 0.5) weights keep the activations finite (they overflow to NaN otherwise)."""
    def fan_in(shape):
        return np.prod(shape[:2]) if len(shape) == 4 and shape[-1] == 1 else np.prod(shape[:-1])

    return {name: value / np.float32(0.5 * np.sqrt(fan_in(value.shape))) if name.endswith("weights") else value
            for name, value in official.items()}


@pytest.fixture(scope="module", params=sorted(OFFICIAL))
def loaded(request, tmp_path_factory):
    """(experiment, model, official tensors, load_published_model's description, checkpoint prefix)."""
    experiment = experiments.get_experiment(request.param)
    model = assemble(experiment, with_data=False).model
    official = _unit_gain(_random_official(model, seed=7))
    prefix = write_checkpoint(str(tmp_path_factory.mktemp("zoo") / "model.ckpt"), official)
    description = load_published_model(model, prefix)
    yield experiment, model, official, description, prefix
    keras.backend.clear_session()


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_experiment_states_the_official_settings(name):
    """common.py / g3doc: xception_65, rates 6,12,18 at OS 16, image pooling, separable ASPP and
    decoder, 256 channels, 48 low-level channels, decoder at OS 4; eval on mean-padded crops."""
    experiment = experiments.get_experiment(name)
    _, crop, miou = OFFICIAL[name]
    m, e = experiment.model, experiment.eval
    assert (m.arch, m.backbone, m.output_stride, m.atrous_rates, m.multi_grid) == (
        "deeplab_v3_plus", "xception65", 16, (6, 12, 18), ())
    assert (m.aspp_image_pooling, m.separable, m.aspp_filters, m.low_level_filters, m.decoder_filters) == (
        True, True, 256, 48, 256)
    assert m.align_corners and m.backbone_padding == "keras"  # Xception-65's only padding: fixed_padding
    assert (e.output_stride, e.scales, e.flip, e.pad_to_size, e.pad_value) == (0, (1.0,), False, crop, (127.5,) * 3)
    assert experiment.paper_miou == miou and "model_zoo.md" in experiment.paper_source


def test_checkpoint_of_official_names_loads(loaded):
    experiment, model, official, description, prefix = loaded
    classes = OFFICIAL[experiment.name][0]
    assert description == f"TF1 checkpoint {prefix} ({COUNTS['xception65']} tensors)"
    # Shapes of the published variables, from model.py: 2048-channel features, 256-channel
    # branches (4 + image pooling), 48 + 256 = 304 decoder channels, a biased classifier.
    shapes = {"aspp1_depthwise/depthwise_weights": (3, 3, 2048, 1), "aspp3_pointwise/weights": (1, 1, 2048, 256),
              "concat_projection/weights": (1, 1, 5 * 256, 256),
              "decoder/feature_projection0/weights": (1, 1, 256, 48),
              "decoder/decoder_conv0_depthwise/depthwise_weights": (3, 3, 304, 1),
              "decoder/decoder_conv1_pointwise/weights": (1, 1, 256, 256),
              "logits/semantic/weights": (1, 1, 256, classes), "logits/semantic/biases": (classes,)}
    assert {name: official[name].shape for name in shapes} == shapes
    aspp = model.get_layer("aspp")
    assert [aspp.get_layer(f"aspp_atrous{i}_conv").rate for i in (1, 2, 3)] == [6, 12, 18]
    kernel = model.get_layer("decoder").get_layer("decoder_low_level_conv").get_weights()[0]
    np.testing.assert_array_equal(kernel, official["decoder/feature_projection0/weights"])


def test_entry_flow_pads_fixed_not_same_at_even_sizes(loaded):
    """xception.py: the strided root conv is `conv2d_same` (explicit (1, 1) padding, "VALID") and
    `use_explicit_padding` is on, so at an even size the official output differs from TF's
    "SAME" ((0, 1) padding); NumPy reference `_conv_bn_relu` pads (1, 1)."""
    _, model, official, _, _ = loaded
    images = np.random.default_rng(5).uniform(-1, 1, (1, 10, 10, 3)).astype(np.float32)
    actual = _layer_output(model, "xception65_os16", "entry_flow_conv1_1_relu", images)
    np.testing.assert_allclose(actual, _conv_bn_relu(images, official, ENTRY_CONV, np.inf), rtol=1e-4, atol=1e-4)
    same = tf.nn.conv2d(images, official[f"{ENTRY_CONV}/weights"], 2, "SAME").numpy()
    bn = {v: official[f"{ENTRY_CONV}/BatchNorm/{v}"] for v in ("gamma", "beta", "moving_mean", "moving_variance")}
    same = np.maximum((same - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"], 0)
    assert actual.shape == same.shape == (1, 5, 5, 32) and np.abs(actual - same).max() > 0.1


def _align_corners_matrix(size_in: int, size_out: int) -> np.ndarray:
    """[size_out, size_in]: TF1 `resize_bilinear(align_corners=True)` along one axis; output i
    reads input position i * (size_in - 1) / (size_out - 1)."""
    matrix = np.zeros((size_out, size_in))
    for i, position in enumerate(np.arange(size_out) * (size_in - 1) / (size_out - 1)):
        low = min(int(np.floor(position)), size_in - 2)
        matrix[i, low], matrix[i, low + 1] = low + 1 - position, position - low
    return matrix


def test_logits_are_upsampled_with_aligned_corners(loaded):
    """model.py: every resize is `resize_bilinear(align_corners=True)`; at 65x65 the 17x17
    logits (decoder output stride 4) land on every 4th output pixel, corners included."""
    _, model, _, _, _ = loaded
    resizes = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
               if isinstance(layer, ResizeToMatch)]
    assert len(resizes) == 3 and all(layer.align_corners for layer in resizes)  # pooling, decoder, logits
    images = np.random.default_rng(6).uniform(-1, 1, (1, 65, 65, 3)).astype(np.float32)
    logits = keras.Model(model.input, model.get_layer(CLASSIFIER_LAYER).output)(images, training=False).numpy()
    output = model(images, training=False).numpy()
    assert logits.shape[1:3] == (17, 17) and np.isfinite(logits).all() and np.abs(logits).max() > 0
    resize = _align_corners_matrix(17, 65)
    expected = np.einsum("ih,jw,bhwc->bijc", resize, resize, logits.astype(np.float64))
    scale = np.abs(logits).max()
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(output[:, ::4, ::4], logits, rtol=0, atol=1e-5 * scale)
    half_pixel = tf.image.resize(logits, (65, 65)).numpy()  # Keras' convention: another result
    assert np.abs(half_pixel - expected).max() > 1e-2 * scale


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_input_scaling_maps_the_mean_padding_to_zero(name):
    """feature_extractor.py: xception_65 inputs are (2 / 255) x - 1, and `mean_pixel` 127.5 pads
    so that "the padded regions after pre-processing will contain value 0"."""
    experiment = experiments.get_experiment(name)
    normalize = get_normalizer(experiment.model.backbone)  # what `assemble` gives evaluation and export
    pixels = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    np.testing.assert_allclose(normalize(pixels).numpy(), 2.0 / 255.0 * pixels.astype(np.float64) - 1.0, atol=1e-6)
    np.testing.assert_array_equal(normalize(np.array(experiment.eval.pad_value, np.float32)).numpy(), 0.0)
