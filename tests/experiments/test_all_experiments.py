"""Every registered experiment builds its model: output shape, output stride, and the paper's
parameter count where the paper gives one (DeepLab v2 Table 1 / v1 Table 2, 21 classes); and
passes the trainer's checks on CPUs whose kernels cannot train a `native` dilated convolution."""

import keras
import numpy as np
import pytest

import experiments
from deeplab_tf.layers import atrous_auto
from deeplab_tf.models import build_model
from deeplab_tf.validation import validate

# Classes per dataset, from the datasets' definitions (background included where it is a class).
NUM_CLASSES = {
    "voc2012_segmentation": 21, "pascal_context": 60, "pascal_person_part": 7, "cityscapes": 19,
    "camvid_folder": 11, "camvid": 11, "synthetic_shapes": 4, "ade20k": 150,
}
PAPER_PARAMETERS_M = {"voc_fov_7x7_r4": 134.3, "voc_fov_4x4_r4": 65.1, "voc_fov_4x4_r8": 65.1, "voc_largefov": 20.5}


def distinct_models():
    """One experiment name per distinct (model config, classes): many rows share a network."""
    seen = {}
    for name in experiments.list_experiments():
        experiment = experiments.get_experiment(name)
        seen.setdefault((experiment.model, NUM_CLASSES[experiment.data.dataset]), name)
    return sorted(seen.values())


def find_backbone(model, output_stride):
    """Returns the nested backbone model (named `*_os{output_stride}`) inside `model`."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.Model) and layer.name.endswith(f"_os{output_stride}"):
            return layer
    raise AssertionError(f"no backbone at output stride {output_stride} in {model.name}")


def test_every_name_has_a_distinct_model_or_a_shared_one():
    assert set(distinct_models()) <= set(experiments.list_experiments())
    assert len(experiments.list_experiments()) >= 25


@pytest.mark.parametrize("name", distinct_models())
def test_experiment_model_builds(name):
    experiment = experiments.get_experiment(name)
    num_classes = NUM_CLASSES[experiment.data.dataset]
    model = build_model(experiment.model, num_classes).model
    assert model(np.zeros((1, 65, 65, 3), np.float32), training=False).shape == (1, 65, 65, num_classes)
    stride = experiment.model.output_stride
    features = find_backbone(model, stride)(np.zeros((1, 64, 64, 3), np.float32), training=False)
    assert features["P5"].shape[1:3] == (64 // stride, 64 // stride)
    if name in PAPER_PARAMETERS_M:
        assert model.count_params() / 1e6 == pytest.approx(PAPER_PARAMETERS_M[name], rel=0.01)
    keras.backend.clear_session()


@pytest.mark.parametrize("name", experiments.list_experiments())
def test_experiment_trains_where_dilated_convolutions_have_no_gradient(name, monkeypatch):
    """Where TensorFlow runs Eigen's kernels (CPUs without AVX512_VNNI, AVX512_BF16, AVX_VNNI or
    AMX, e.g. AVX2-only ones) a dilated `tf.nn.conv2d` has no gradient in any type, so a recipe
    that pins `model.atrous_implementation=native` is refused there; none may."""
    monkeypatch.setattr(atrous_auto, "native_has_dilated_gradients", lambda dtype: False)
    validate(experiments.get_experiment(name), training=True)
