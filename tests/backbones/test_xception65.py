"""DeepLabv3+'s modified aligned Xception-65: structure, strides and rates, dense features.

Dense features: a strided conv of this backbone pads like DeepLab's `fixed_padding`, so its
output j is the stride-1 output at input position 2j (see
`deeplab_tf.layers.separable_atrous_conv`), as for ResNet's 1x1 strided convs in
test_backbone_features.py. Removing strides with densification factor f therefore puts stock
position j at dense position f * j, with no border exception by the same argument as there:
every later layer is pointwise or a "same" conv dilated by f, whose taps f * (j +- 1) leave
the dense map exactly where j +- 1 leaves the stock map.
"""

import re

import keras
import numpy as np
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import build_xception65
from deeplab_tf.backbones.xception65 import FEATURE_CHANNELS
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D

STRIDES = {"P2": 4, "P3": 8, "P4": 16, "P5": 32}
SIZES = ((65, 65), (64, 96))


@pytest.fixture(scope="module")
def backbones(tmp_path_factory, randomize_batchnorm, set_implementation):
    """Returns get(output_stride, implementation="native") -> model, all with the weights of
    one OS32 model whose batch norms (nested ones included) are randomised and calibrated, the
    implementation set on its separable convs after building; `get.path` is its weight file."""
    stock = build_xception65(32)
    randomize_batchnorm(stock, seed=0)
    path = str(tmp_path_factory.mktemp("xception65") / "xception65.weights.h5")
    stock.save_weights(path)
    cache = {(32, "native"): set_implementation(stock, "native")}

    def get(output_stride, implementation="native"):
        key = (output_stride, implementation)
        if key not in cache:
            cache[key] = set_implementation(build_xception65(output_stride, weights=path),
                                            implementation)
        return cache[key]

    get.path = path
    return get


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return {size: rng.uniform(-1, 1, (1, *size, 3)).astype("float32") for size in SIZES}


def features(model, x):
    return {k: np.asarray(v) for k, v in model(x, training=False).items()}


def expected_parameters():
    """Trainable parameters of Xception-65 without classifier, counted from its definition:
    conv k x k: k*k*in*out; separable: 9*in (depthwise) + in*out (pointwise); every conv is
    followed by a BN (gamma, beta) of its outputs, each depthwise by one of its inputs."""
    total = 3 * 3 * 3 * 32 + 2 * 32 + 3 * 3 * 32 * 64 + 2 * 64
    units = [(64, (128,) * 3, True), (128, (256,) * 3, True), (256, (728,) * 3, True)]
    units += [(728, (728,) * 3, False)] * 16
    units += [(728, (728, 1024, 1024), True), (1024, (1536, 1536, 2048), False)]
    for channels_in, depths, conv_shortcut in units:
        if conv_shortcut:
            total += channels_in * depths[-1] + 2 * depths[-1]
        for depth in depths:
            total += 9 * channels_in + 2 * channels_in + channels_in * depth + 2 * depth
            channels_in = depth
    return total


def test_structure_and_parameter_count(backbones):
    """65 = 2 root convs + (3 + 3 + 3 + 16 * 3 + 3 + 3) separable convs; 4 1x1 shortcuts.

    37,867,312 trainable parameters, as counted by `expected_parameters`. (DeepLab's ~41M is
    the whole DeepLabv3+: this backbone plus about 3M in ASPP, decoder and classifier.)
    """
    model = backbones(16)
    separable = [l for l in model.layers if isinstance(l, SeparableAtrousConv2D)]
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(separable) == 63
    assert [l.kernel_size for l in convs] == [(3, 3), (3, 3)] + [(1, 1)] * 4
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected_parameters() == 37_867_312
    assert {k: v.shape[-1] for k, v in model.output.items()} == FEATURE_CHANNELS


@pytest.mark.parametrize("output_stride, rates", [
    (32, {"entry_flow_block3": (2, 1), "middle_flow_block1": (1, 1),
          "exit_flow_block1": (2, 1), "exit_flow_block2": (1, 1)}),
    (16, {"entry_flow_block3": (2, 1), "middle_flow_block1": (1, 1),
          "exit_flow_block1": (1, 1), "exit_flow_block2": (1, 2)}),
    (8, {"entry_flow_block3": (1, 1), "middle_flow_block1": (1, 2),
         "exit_flow_block1": (1, 2), "exit_flow_block2": (1, 4)}),
])
def test_strides_and_rates(backbones, output_stride, rates):
    """DeepLab's stack_blocks_dense: block -> (stride of its last conv, rate of its convs)."""
    model = backbones(output_stride)
    for layer in model.layers:
        block = layer.name.split("_unit")[0]  # name: {block}_unit{u}_sepconv{i}
        if isinstance(layer, SeparableAtrousConv2D) and block in rates:
            stride, rate = rates[block]
            expected = (stride if layer.name.endswith("sepconv3") else 1, rate)
            assert (layer.strides, layer.rate) == expected, layer.name
    for block in ("entry_flow_block3", "exit_flow_block1"):
        shortcut = model.get_layer(f"{block}_unit1_shortcut")
        assert shortcut.strides == (rates[block][0],) * 2, block


def test_multi_grid_scales_the_last_block():
    model = build_xception65(16, multi_grid=(1, 2, 4))
    rates = [model.get_layer(f"exit_flow_block2_unit1_sepconv{i}").rate for i in (1, 2, 3)]
    assert rates == [2, 4, 8]
    assert model.get_layer("exit_flow_block1_unit1_sepconv3").rate == 1


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_output_shapes(backbones, images, output_stride):
    """Each stride 2 maps n to ceil(n / 2): 65 -> 33, 17, 9, 5, 3; 64 x 96 -> ... 2 x 3."""
    model = backbones(output_stride)
    for size, x in images.items():
        for level, value in features(model, x).items():
            stride = min(STRIDES[level], output_stride)
            expected = (1, *(-(-n // stride) for n in size), FEATURE_CHANNELS[level])
            assert value.shape == expected, (size, level)


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("size", SIZES)
def test_dense_features_hold_stock_values(backbones, images, output_stride, size):
    """dense[f * j] == stock[j] (1e-4 relative) where f = 2**n / min(2**n, OS); every other
    offset in [0, f) is far off, so the test pins the alignment down."""
    expected = features(backbones(32), images[size])
    for level, value in features(backbones(output_stride), images[size]).items():
        factor = STRIDES[level] // min(STRIDES[level], output_stride)
        scale = np.abs(expected[level]).max()
        assert value[:, ::factor, ::factor].shape == expected[level].shape, level
        for offset in range(factor):
            dense = value[:, offset::factor, offset::factor]
            error = np.abs(dense - expected[level][:, :dense.shape[1], :dense.shape[2]]).max()
            if offset == 0:
                assert error <= 1e-4 * scale, level
            else:
                assert error > 0.1 * scale, (level, offset)


def test_space_to_batch_equals_native(backbones, images, space_to_batch_calls):
    """Every stride-1 separable conv runs the implementation set on it after building."""
    native, space_to_batch = (backbones(8, implementation)
                              for implementation in ("native", "space_to_batch"))
    x = images[(65, 65)]
    expected = features(native, x)
    assert not space_to_batch_calls
    result = features(space_to_batch, x)
    separable = [l for l in space_to_batch.layers if isinstance(l, SeparableAtrousConv2D)]
    assert sorted(space_to_batch_calls) == sorted(l.rate for l in separable if l.strides == 1)
    for level, value in result.items():
        scale = np.abs(expected[level]).max()
        np.testing.assert_allclose(value, expected[level], rtol=0, atol=1e-4 * scale,
                                   err_msg=level)


def test_weights_file_round_trip_through_build_backbone(backbones, images):
    """build_backbone("xception65", ...) is build_xception65 with the same arguments, and a
    model built from the saved file computes exactly what the saved model computes."""
    x = images[(64, 96)]
    expected = features(backbones(32), x)
    model = build_backbone("xception65", 32, weights=backbones.path)
    for level, value in features(model, x).items():
        np.testing.assert_array_equal(value, expected[level], err_msg=level)
    with pytest.raises(ValueError, match=r"last exit-flow block.*multi_grid=\(1, 2\)"):
        build_backbone("xception65", multi_grid=(1, 2))


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"\(8, 16, 32\).*output_stride=4"):
        build_xception65(4)
    with pytest.raises(ValueError, match="no Keras Applications ImageNet weights"):
        build_xception65(weights="imagenet")
    keras_xception = tmp_path / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(ValueError, match="for Keras' Xception, a different network.*notop.h5"):
        build_backbone("xception65", weights=keras_xception)
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        build_xception65(weights=tmp_path / "missing.weights.h5")
    for multi_grid in ((1, 2), (1, 0, 2), "124"):
        with pytest.raises(ValueError, match=rf"3 positive ints.*{re.escape(repr(multi_grid))}"):
            build_xception65(multi_grid=multi_grid)
