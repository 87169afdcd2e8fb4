"""Shared fixtures: stock Keras Applications models with distinct weights, saved to files.

The references here are built with `keras.applications` directly, never with
`deeplab_tf.backbones`, so tests compare against an independent model. Their weight files have
the layout of the published Keras Applications ImageNet files (legacy Keras HDF5), written by
Keras' own legacy writer.
"""

import h5py
import keras
import numpy as np
import pytest
from keras.src.legacy.saving import legacy_h5_format

from deeplab_tf.layers import atrous_conv
from deeplab_tf.layers.speed_choices import apply_speed_choices

# name -> (keras.applications constructor, constructor kwargs, feature layer per level)
STOCK = {
    "mobilenet_v2": (
        keras.applications.MobileNetV2,
        {"alpha": 0.35},
        {"P2": "block_2_add", "P3": "block_5_add", "P4": "block_12_add",
         "P5": "block_16_project_BN"},
    ),
    "resnet50": (
        keras.applications.ResNet50,
        {},
        {"P2": "conv2_block3_out", "P3": "conv3_block4_out", "P4": "conv4_block6_out",
         "P5": "conv5_block3_out"},
    ),
    "resnet101": (
        keras.applications.ResNet101,
        {},
        {"P2": "conv2_block3_out", "P3": "conv3_block4_out", "P4": "conv4_block23_out",
         "P5": "conv5_block3_out"},
    ),
    "vgg16": (
        keras.applications.VGG16,
        {},
        {"P2": "block2_pool", "P3": "block3_pool", "P4": "block4_pool", "P5": "block5_pool"},
    ),
}


def randomize_batchnorm(model, seed):
    """Gives every BatchNormalization layer of `model`, nested ones included, its own weights
    and data-calibrated statistics.

    Random init leaves all BN layers equal (1, 0, 0, 1), which would hide weights copied to
    the wrong layer, and lets the signal fade with depth until features are nearly constant
    in space, which would hide misplaced positions. So gamma and beta are drawn near (1, 0)
    and the moving statistics are set to the batch statistics of random images (one
    training-mode pass with momentum 0): features keep unit scale and vary in space.
    """
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([rng.uniform(0.8, 1.2, gamma.shape).astype("float32"),
                           rng.normal(0.0, 0.1, beta.shape).astype("float32"), mean, var])
        layer.momentum = 0.0
    model(rng.uniform(-1, 1, (2, 96, 96, 3)).astype("float32"), training=True)


def write_legacy_h5(path, model):
    """Writes `model`'s weights to `path` in the layout of the published Keras Applications
    files: layer names at the root, one group per layer listing its weight names.

    Keras 3 with h5py 3 stores those names as variable-length strings; the published files
    (h5py 2) hold fixed-length byte strings, so the names are rewritten as such.
    """
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)
        for group in (file, *file.values()):
            for key in ("layer_names", "weight_names"):
                if len(group.attrs.get(key, [])):
                    group.attrs[key] = np.asarray(group.attrs[key].tolist(), dtype="S")


class Stock:
    """A stock model cut at its feature layers, and the file holding its weights."""

    def __init__(self, name, directory):
        application, self.kwargs, self.feature_layers = STOCK[name]
        self.model = application(include_top=False, weights=None, input_shape=(None, None, 3),
                                 **self.kwargs)
        randomize_batchnorm(self.model, seed=len(name))
        self.weights_path = str(directory / f"{name}_notop.h5")
        write_legacy_h5(self.weights_path, self.model)
        outputs = {level: self.model.get_layer(layer).output
                   for level, layer in self.feature_layers.items()}
        self.features = keras.Model(self.model.input, outputs)

    def __call__(self, images):
        """Returns the stock features {"P2".."P5"} of `images` as NumPy arrays, BN in inference."""
        return {k: np.asarray(v) for k, v in self.features(images, training=False).items()}


@pytest.fixture(scope="session")
def stock(tmp_path_factory):
    """Returns a function name -> `Stock`, building each one once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = Stock(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(name="randomize_batchnorm", scope="session")
def randomize_batchnorm_fixture():
    """Returns `randomize_batchnorm(model, seed)`, for tests that build their own models."""
    return randomize_batchnorm


def set_implementation(model, implementation):
    """Sets `implementation` on every atrous layer of `model` as the models do after building
    (`apply_speed_choices`); returns `model`."""
    apply_speed_choices(model, implementation, fused_batch_norm=False)
    return model


@pytest.fixture(name="set_implementation", scope="session")
def set_implementation_fixture():
    """Returns `set_implementation(model, implementation)`."""
    return set_implementation


@pytest.fixture
def space_to_batch_calls(monkeypatch):
    """Returns the list to which every call of the "space_to_batch" atrous implementation (by
    any layer or function) appends its rate, for this test."""
    calls = []
    run = atrous_conv._IMPLEMENTATIONS["space_to_batch"]

    def spy(op, inputs, kernel, rate, padding):
        calls.append(rate)
        return run(op, inputs, kernel, rate, padding)

    monkeypatch.setitem(atrous_conv._IMPLEMENTATIONS, "space_to_batch", spy)
    return calls


@pytest.fixture
def random_images():
    """Returns a function size -> float32 images [1, size, size, 3], uniform in [-1, 1]."""
    rng = np.random.default_rng(0)
    return lambda size: rng.uniform(-1, 1, (1, size, size, 3)).astype("float32")


@pytest.fixture(scope="session")
def vgg16_top_file(tmp_path_factory):
    """Returns (path, fc) for a stock `VGG16(include_top=True)` with random weights written as
    the published vgg16_weights_tf_dim_ordering_tf_kernels.h5 (about 550 MB): `fc` maps "fc1",
    "fc2" and "block1_conv1" to the stock layer's [kernel, bias]."""
    model = keras.applications.VGG16(include_top=True, weights=None)
    path = str(tmp_path_factory.mktemp("vgg16_top") / "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
    write_legacy_h5(path, model)
    fc = {name: model.get_layer(name).get_weights() for name in ("fc1", "fc2", "block1_conv1")}
    del model
    keras.backend.clear_session()
    return path, fc
