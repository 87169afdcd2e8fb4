"""DeepLab v1 / v2 heads: parameter counts and fields of view against the papers, structure,
atrous implementations, serialisation and argument errors.

Paper numbers (21 classes): DeepLab v1 (arXiv:1412.7062) Table 2 gives the parameters and the
receptive fields of DeepLab-CRF-7x7 (fc6 7x7, rate 4, 4096 channels: 134.3M, RF 224),
DeepLab-CRF (4x4, rate 4: 65.1M, RF 128), DeepLab-CRF-4x4 (4x4, rate 8: 65.1M, RF 224) and
DeepLab-CRF-LargeFOV (3x3, rate 12, 1024 channels: 20.5M, RF 224). An atrous k x k kernel at
rate r spans k + (k - 1)(r - 1) pixels (DeepLab v2, arXiv:1606.00915, Sec. 3.1).
"""

import math

import keras
import numpy as np
import pytest

from deeplab_tf.config import ModelConfig
from deeplab_tf.layers import AtrousConv2D
from deeplab_tf.models import build_model


def build_deeplab_v2(backbone, num_classes, head, rates, kernel_size=3, fc_channels=1024, weights=None,
                     pool5a=False, atrous_implementation="auto", alpha=1.0):
    """The DeepLab v2 model of these fields (`build_model`, speed choices applied)."""
    config = ModelConfig(arch="deeplab_v2", backbone=backbone, output_stride=8, head=head, atrous_rates=rates,
                         fc_kernel_size=kernel_size, fc_channels=fc_channels, backbone_weights=weights or "",
                         pool5a=pool5a, atrous_implementation=atrous_implementation, backbone_alpha=alpha)
    return build_model(config, num_classes).model


def find_layer(model, name):
    """Returns the layer called `name` in `model`, nested sub-models (the backbone, ASPP) included."""
    return next(layer for layer in model._flatten_layers(include_self=False, recursive=True) if layer.name == name)

# name -> (fc6 kernel size, rate, channels, parameters in the paper, receptive field in the paper)
VGG_VARIANTS = {
    "DeepLab-CRF-7x7": (7, 4, 4096, 134.3e6, 224),
    "DeepLab-CRF": (4, 4, 4096, 65.1e6, 128),
    "DeepLab-CRF-4x4": (4, 8, 4096, 65.1e6, 224),
    "DeepLab-CRF-LargeFOV": (3, 12, 1024, 20.5e6, 224),
}


def vgg_variant(name, num_classes=21, fc_channels=None, **kwargs):
    """Builds the VGG-16 model `name` of VGG_VARIANTS (`fc_channels` overrides its width)."""
    kernel_size, rate, channels, _, _ = VGG_VARIANTS[name]
    return build_deeplab_v2("vgg16", num_classes, "fc", (rate,), kernel_size=kernel_size,
                            fc_channels=fc_channels or channels, **kwargs)


def constant_positive_weights(model):
    """Kernels 1 / (kernel area x input channels), biases 0: each conv averages its window, so
    an impulse stays positive (ReLU, max and average pooling pass it) and finite, and exactly
    the positions it can reach become non-zero."""
    model.set_weights([np.full(w.shape, 1 / math.prod(w.shape[:-1]), "float32")
                       if w.path.endswith("kernel") else np.zeros(w.shape, "float32")
                       for w in model.weights])


def nonzero_rows(values):
    """Returns the first and last row holding a non-zero entry of values [1, H, W, C]."""
    rows = np.flatnonzero(np.abs(np.asarray(values)[0]).sum(axis=(1, 2)))
    return rows[0], rows[-1]


def nonzero_extent(values):
    """Returns the number of rows spanned by the non-zero entries of values [1, H, W, C]."""
    first, last = nonzero_rows(values)
    return last - first + 1


@pytest.mark.parametrize("name", ["DeepLab-CRF-LargeFOV", "DeepLab-CRF", "DeepLab-CRF-7x7"])
def test_parameter_counts_match_the_paper(name):
    paper = VGG_VARIANTS[name][3]
    assert abs(vgg_variant(name).count_params() - paper) <= 0.01 * paper


@pytest.mark.parametrize("implementation", ["native", "space_to_batch"])
@pytest.mark.parametrize("name", sorted(VGG_VARIANTS))
def test_fc6_spans_the_effective_kernel_size(name, implementation):
    """An impulse on the stride-8 features spreads over k + (k - 1)(r - 1) logits."""
    kernel_size, rate, _, _, _ = VGG_VARIANTS[name]
    model = vgg_variant(name, fc_channels=4, num_classes=2, atrous_implementation=implementation)
    head = keras.Model(find_layer(model, f"fc6_rate{rate}").input,
                       find_layer(model, f"logits_rate{rate}").output)
    constant_positive_weights(head)
    impulse = np.zeros((1, 61, 61, 512), "float32")
    impulse[0, 30, 30] = 1.0
    assert nonzero_extent(head(impulse)) == kernel_size + (kernel_size - 1) * (rate - 1)


def test_field_of_view_grows_as_in_the_paper():
    """Measured on whole models (input impulse -> stride-8 logits): the three variants with
    RF 224 in v1 Table 2 see equally far, DeepLab-CRF (RF 128) 96 input pixels less, and the
    stride-8 map stays aligned (the response to the impulse at pixel 8 * 28 is centred on
    logit 28; 4x4 kernels at even rates pad "same" symmetrically too)."""
    image = np.zeros((1, 449, 449, 3), "float32")
    image[0, 224, 224] = 1.0
    extents = {}
    for name, (_, rate, _, _, _) in VGG_VARIANTS.items():
        model = vgg_variant(name, fc_channels=2, num_classes=1)
        constant_positive_weights(model)
        logits = keras.Model(model.input, model.get_layer("upsample_logits").input[0])(image)  # one branch: its scores
        assert logits.shape[1:3] == (57, 57)  # ceil(449 / 8): output stride 8
        first, last = nonzero_rows(logits)
        assert first + last == 2 * 28, name
        extents[name] = (last - first + 1) * 8  # input pixels
    paper = {name: variant[4] for name, variant in VGG_VARIANTS.items()}
    for name in VGG_VARIANTS:
        assert extents[name] - extents["DeepLab-CRF"] == paper[name] - paper["DeepLab-CRF"], name


def test_pool5a_widens_the_field_of_view_by_one_pixel_per_side():
    model = vgg_variant("DeepLab-CRF-LargeFOV", fc_channels=4, num_classes=2, pool5a=True)
    pool = model.get_layer("pool5a")
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (1, 1), "same")
    assert not pool.weights
    head = keras.Model(pool.input, model.get_layer("upsample_logits").input[0])  # the summed scores
    constant_positive_weights(head)
    impulse = np.zeros((1, 61, 61, 512), "float32")
    impulse[0, 30, 30] = 1.0
    assert nonzero_extent(head(impulse)) == 25 + 2


@pytest.mark.parametrize("rates", [(2, 4, 8, 12), (6, 12, 18, 24)])  # ASPP-S, ASPP-L
def test_vgg_aspp_sums_fc_branches(rates):
    model = build_deeplab_v2("vgg16", 21, "fc", rates)
    for rate in rates:
        fc6, fc7 = find_layer(model, f"fc6_rate{rate}"), find_layer(model, f"fc7_rate{rate}")
        assert (fc6.kernel_size, fc6.rate, fc6.filters) == (3, rate, 1024)
        assert (fc7.kernel_size, fc7.filters) == ((1, 1), 1024)
        assert find_layer(model, f"logits_rate{rate}").kernel_size == 1
    total = find_layer(model, "logits_sum")
    assert isinstance(total, keras.layers.Add)
    assert {t._keras_history.operation.name for t in total.input} == {
        f"logits_rate{rate}" for rate in rates}
    # VGG-16 convs (14,714,688) + 4 x (fc6 4,719,616 + fc7 1,049,600 + fc8 21,525)
    assert model.count_params() == 14_714_688 + 4 * 5_790_741


@pytest.mark.parametrize("backbone, rates", [
    ("resnet101", (6, 12, 18, 24)),  # ASPP-L
    ("resnet50", (12,)),  # LargeFOV
])
def test_resnet_classifier_branches(backbone, rates):
    model = build_deeplab_v2(backbone, 21, "classifier", rates)
    scores = [layer for layer in model.get_layer("aspp").layers if isinstance(layer, AtrousConv2D)]
    assert [(l.kernel_size, l.rate, l.filters) for l in scores] == [(3, r, 21) for r in rates]
    assert not any(layer.name.startswith(("fc", "drop")) for layer in model.get_layer("aspp").layers)
    features = model.get_layer(f"{backbone}_os8")  # output stride 8: conv5 at rate 4
    assert features.get_layer("conv5_block3_2_conv").dilation_rate == (4, 4)
    images = np.zeros((1, 65, 65, 3), "float32")
    assert model(images).shape == (1, 65, 65, 21)


@pytest.mark.parametrize("build", [
    lambda impl: vgg_variant("DeepLab-CRF-LargeFOV", atrous_implementation=impl),
    lambda impl: build_deeplab_v2("resnet50", 21, "classifier", (6, 12, 18, 24),
                                  atrous_implementation=impl),
], ids=["vgg16-largefov", "resnet50-aspp-l"])
def test_atrous_implementations_agree(build):
    native, space_to_batch = build("native"), build("space_to_batch")
    space_to_batch.set_weights(native.get_weights())
    images = np.random.default_rng(0).normal(0, 50, (1, 97, 97, 3)).astype("float32")
    outputs = [np.asarray(model(images, training=False)) for model in (native, space_to_batch)]
    assert outputs[0].shape == (1, 97, 97, 21)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4,
                               atol=1e-4 * np.abs(outputs[0]).max())


def test_keras_file_round_trip(tmp_path):
    model = build_deeplab_v2("mobilenet_v2", 3, "fc", (2, 4), fc_channels=8, pool5a=True,
                             atrous_implementation="space_to_batch", alpha=0.35)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    images = np.random.default_rng(1).normal(size=(1, 40, 48, 3)).astype("float32")
    np.testing.assert_allclose(restored(images), model(images), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"\('fc', 'classifier'\).*head='aspp'"):
        build_deeplab_v2("vgg16", 21, "aspp", (6, 12))
    for rates in [(), (6, 6), 12, (0,)]:
        with pytest.raises(ValueError, match="distinct positive ints|at least one rate"):
            build_deeplab_v2("vgg16", 21, "fc", rates)
    with pytest.raises(FileNotFoundError, match="'vgg16' not found"):
        build_deeplab_v2("vgg16", 21, "fc", (12,), weights=str(tmp_path / "missing.h5"))
