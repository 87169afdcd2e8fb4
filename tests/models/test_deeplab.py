"""DeepLabv3 / v3+ assembly: shapes, output stride, ASPP rates, implementations, serialisation."""

import dataclasses

import keras
import numpy as np
import pytest

from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_deeplab

SMALL = ModelConfig(backbone="mobilenet_v2", backbone_alpha=0.35, aspp_filters=16, low_level_filters=8, decoder_filters=16)


@pytest.mark.parametrize("arch", ["deeplab_v3", "deeplab_v3_plus"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_logits_at_input_resolution_and_aspp_at_output_stride(arch, output_stride):
    config = dataclasses.replace(SMALL, arch=arch, output_stride=output_stride)
    model = build_deeplab(config, num_classes=5)
    images = np.random.default_rng(0).normal(size=(2, 67, 94, 3)).astype(np.float32)
    assert model(images).shape == (2, 67, 94, 5)
    aspp_input = model.get_layer(f"mobilenet_v2_os{output_stride}")(images[:, :64, :80])["P5"]
    # MobileNetV2's 'valid' stride-2 layers floor odd sizes, so the stride is checked on multiples of 16.
    assert aspp_input.shape[1:3] == (64 // output_stride, 80 // output_stride)
    rates = [model.get_layer("aspp").get_layer(f"aspp_atrous{i}_conv").rate for i in (1, 2, 3)]
    assert rates == [r * 16 // output_stride for r in (6, 12, 18)]
    has_decoder = any(layer.name == "decoder" for layer in model.layers)
    assert has_decoder == (arch == "deeplab_v3_plus")


def test_keras_file_round_trip(tmp_path):
    model = build_deeplab(SMALL, num_classes=3)
    images = np.random.default_rng(2).normal(size=(1, 40, 48, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored(images).numpy(), model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="deeplab_v9"):
        build_deeplab(dataclasses.replace(SMALL, arch="deeplab_v9"), 3)
    with pytest.raises(ValueError, match="output_stride=32"):
        build_deeplab(dataclasses.replace(SMALL, output_stride=32), 3)
