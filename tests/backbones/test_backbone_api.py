"""Normalisation, metadata and argument errors of `deeplab_tf.backbones`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.backbones import BACKBONE_NAMES
from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import feature_channels
from deeplab_tf.backbones import get_normalizer
from deeplab_tf.backbones import normalize
from deeplab_tf.layers import AtrousDepthwiseConv2D

PREPROCESS = {
    "resnet50": keras.applications.resnet50.preprocess_input,
    "resnet101": keras.applications.resnet.preprocess_input,
    "mobilenet_v2": keras.applications.mobilenet_v2.preprocess_input,
    "vgg16": keras.applications.vgg16.preprocess_input,
    "xception65": keras.applications.xception.preprocess_input,
}


@pytest.mark.parametrize("name", sorted(PREPROCESS))
def test_normalize_matches_keras_preprocess_input(name):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 7, 3)).astype("float32")
    expected = PREPROCESS[name](pixels.copy())
    np.testing.assert_allclose(normalize(tf.constant(pixels), name), expected, atol=1e-4)
    in_dataset = tf.data.Dataset.from_tensor_slices(pixels).map(get_normalizer(name))
    np.testing.assert_allclose(np.stack(list(in_dataset)), expected, atol=1e-4)


def test_normalizers_are_registered_for_every_backbone():
    assert set(PREPROCESS) == set(BACKBONE_NAMES)


@pytest.mark.parametrize("name, channels", [
    ("resnet50", (256, 512, 1024, 2048)),
    ("resnet101", (256, 512, 1024, 2048)),
    ("xception65", (256, 728, 1024, 2048)),
])
def test_feature_channels(name, channels):
    assert feature_channels(name) == dict(zip(("P2", "P3", "P4", "P5"), channels))


def test_unknown_name_names_the_closest_and_the_valid_names():
    with pytest.raises(ValueError, match="'vgg99'. Did you mean 'vgg16'.*"
                                         "mobilenet_v2.*resnet101.*resnet50.*vgg16.*xception65"):
        build_backbone("vgg99")
    with pytest.raises(ValueError, match="'xception'. Did you mean 'xception65'"):
        get_normalizer("xception")


@pytest.mark.parametrize("output_stride", [4, 64, "16"])
def test_invalid_output_stride(output_stride):
    with pytest.raises(ValueError, match=rf"\(8, 16, 32\).*output_stride={output_stride!r}"):
        build_backbone("mobilenet_v2", output_stride)


def test_implementation_set_after_building_is_used(set_implementation, space_to_batch_calls):
    """Builders take no atrous implementation: it is set on the built layers, as the models
    do, and read at every call."""
    model = build_backbone("mobilenet_v2", 8, alpha=0.35)
    dilated = [l for l in model.layers if isinstance(l, AtrousDepthwiseConv2D)]
    assert dilated and {l.implementation for l in dilated} == {"native"}  # the layer default
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    expected = model(x, training=False)
    assert not space_to_batch_calls
    set_implementation(model, "space_to_batch")
    actual = model(x, training=False)
    assert sorted(space_to_batch_calls) == sorted(l.rate for l in dilated)
    for level, value in actual.items():
        np.testing.assert_allclose(value, expected[level], rtol=1e-5,
                                   atol=1e-5 * np.abs(expected[level]).max(), err_msg=level)
    dilated[0].implementation = "fft"
    with pytest.raises(ValueError, match="'native'.*'space_to_batch'.*'fft'"):
        model(x, training=False)


def test_missing_weights_file_is_named(tmp_path):
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(FileNotFoundError, match="resnet50_weights_tf_dim_ordering"):
        build_backbone("resnet50", weights=path)


def test_imagenet_download_is_refused():
    with pytest.raises(ValueError, match="not possible.*local path.*_1.0_224_no_top.h5"):
        build_backbone("mobilenet_v2", weights="imagenet")


@pytest.mark.parametrize("name", ["resnet50", "xception65"])
def test_width_multiplier_only_for_mobilenet(name):
    with pytest.raises(ValueError, match=f"'{name}' has no width multiplier"):
        feature_channels(name, alpha=0.5)
    with pytest.raises(ValueError, match=f"'{name}' has no width multiplier"):
        build_backbone(name, alpha=0.5)
