"""Every model family gives the same outputs with either atrous implementation (1e-4 relative)."""

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
def test_atrous_implementations_agree(family):
    images = np.random.default_rng(1).normal(size=(1, 97, 97, 3)).astype(np.float32)
    native, space_to_batch = (
        build_model(dataclasses.replace(FAMILIES[family], atrous_implementation=name), 3).model
        for name in ("native", "space_to_batch")
    )
    space_to_batch.set_weights(native.get_weights())
    expected = native(images, training=False).numpy()
    actual = space_to_batch(images, training=False).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
