"""Every model family gives the same outputs with each atrous implementation (1e-4 relative),
"auto" (the default) included."""

import dataclasses

import numpy as np
import pytest

from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model

FAMILIES = {
    "v2_vgg16_aspp": ModelConfig(arch="deeplab_v2", backbone="vgg16", output_stride=8, head="fc",
                                 atrous_rates=(2, 4), fc_channels=32),
    "v2_resnet50_aspp_msc": ModelConfig(arch="deeplab_v2", backbone="resnet50", output_stride=8, head="classifier",
                                        atrous_rates=(6, 12), msc_scales=(0.75, 1.0)),
    "v3_resnet50_multigrid_os8": ModelConfig(arch="deeplab_v3", backbone="resnet50", output_stride=8,
                                             multi_grid=(1, 2, 4), aspp_filters=16),
    "v3plus_mobilenet_v2_os8": ModelConfig(arch="deeplab_v3_plus", backbone="mobilenet_v2", backbone_alpha=0.35,
                                           output_stride=8, aspp_filters=16, decoder_filters=16, low_level_filters=8),
    "v3plus_xception65_separable": ModelConfig(arch="deeplab_v3_plus", backbone="xception65", output_stride=16,
                                               separable=True, aspp_filters=16, decoder_filters=16,
                                               low_level_filters=8),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_atrous_implementations_agree(family, monkeypatch):
    from deeplab_tf.layers import atrous_conv

    images = np.random.default_rng(1).normal(size=(1, 97, 97, 3)).astype(np.float32)
    native, space_to_batch, auto = (
        build_model(dataclasses.replace(FAMILIES[family], atrous_implementation=name), 3).model
        for name in ("native", "space_to_batch", "auto")
    )
    expected = native(images, training=False).numpy()
    picks, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation",
                        lambda *args: picks.append(select(*args)) or picks[-1])
    for name, model in (("space_to_batch", space_to_batch), ("auto", auto)):
        model.set_weights(native.get_weights())
        actual = model(images, training=False).numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(),
                                   err_msg=name)
    assert picks  # "auto" chose per call, from the static shapes of the call
    if family.startswith("v3_"):  # rates 12/24/36 on a 13x13 map: the per-tap kernel gradient
        assert "tap_gradient" in picks


def test_auto_is_the_default():
    assert ModelConfig().atrous_implementation == "auto"


def test_fused_batch_norm_option_switches_every_batch_norm_and_keeps_the_outputs():
    import keras

    from deeplab_tf.layers.fused_batch_norm import FusedBatchNormalization

    config = FAMILIES["v3plus_mobilenet_v2_os8"]
    plain = build_model(dataclasses.replace(config, fused_batch_norm=False), 3).model
    fused = build_model(config, 3).model  # the default
    assert config.fused_batch_norm
    fused.set_weights(plain.get_weights())
    norms = [layer for layer in fused._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(layer) is FusedBatchNormalization for layer in norms)
    assert not any(isinstance(layer, FusedBatchNormalization)
                   for layer in plain._flatten_layers(include_self=False, recursive=True))
    images = np.random.default_rng(2).normal(size=(2, 65, 65, 3)).astype(np.float32)
    for training in (False, True):
        expected = plain(images, training=training).numpy()
        actual = fused(images, training=training).numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max(),
                                   err_msg=f"training={training}")
