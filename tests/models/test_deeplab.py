"""DeepLabv3 / v3+ assembly: shapes, output stride, ASPP rates, implementations, serialisation."""

import dataclasses

import keras
import numpy as np
import pytest

from deeplab_tf.config import ModelConfig
from deeplab_tf.layers.resize import ResizeToMatch
from deeplab_tf.models import build_deeplab

SMALL = ModelConfig(backbone="mobilenet_v2", backbone_alpha=0.35, aspp_filters=16, low_level_filters=8, decoder_filters=16)
TF1 = dataclasses.replace(SMALL, arch="deeplab_v3_plus", align_corners=True, aspp_image_pooling=False,
                          backbone_padding="tf_same", backbone_alpha=0.5, backbone_channel_divisor=1, atrous_rates=())


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


@pytest.mark.parametrize("tf1", [False, True])
def test_keras_file_round_trip(tmp_path, tf1):
    model = build_deeplab(TF1 if tf1 else SMALL, num_classes=3)
    images = np.random.default_rng(2).normal(size=(1, 41 if tf1 else 40, 48, 3)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored(images).numpy(), model(images).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="deeplab_v9"):
        build_deeplab(dataclasses.replace(SMALL, arch="deeplab_v9"), 3)
    with pytest.raises(ValueError, match="output_stride=32"):
        build_deeplab(dataclasses.replace(SMALL, output_stride=32), 3)


def _resizes(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, ResizeToMatch)]


def test_tf1_options_reach_every_layer_they_name():
    model = build_deeplab(TF1, num_classes=4)
    assert [layer.name for layer in _resizes(model)] == ["decoder_upsample", "upsample_logits"]
    assert all(layer.align_corners for layer in _resizes(model))
    assert "aspp_pool_conv" not in [layer.name for layer in model.get_layer("aspp").layers]
    backbone = model.get_layer("mobilenet_v2_os16")
    assert backbone.get_layer("block_1_project").filters == 12
    assert not [layer for layer in backbone.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    images = np.random.default_rng(1).normal(size=(1, 65, 49, 3)).astype(np.float32)
    assert model(images).shape == (1, 65, 49, 4)
    assert backbone(images)["P5"].shape[1:3] == (5, 4)  # ceil(n / 16), TF's "SAME"


def test_defaults_keep_keras_conventions():
    model = build_deeplab(SMALL, num_classes=3)
    assert not any(layer.align_corners for layer in _resizes(model))
    backbone = model.get_layer("mobilenet_v2_os16")
    assert backbone.get_layer("block_1_pad") and backbone.get_layer("block_1_project").filters == 8
