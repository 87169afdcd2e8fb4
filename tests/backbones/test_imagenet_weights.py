"""ImageNet initialisation by layer name from files in the published Keras Applications layout.

The files are written by Keras' legacy HDF5 writer from stock models with distinct random
weights (conftest.py), so a weight that lands in the wrong layer, or nowhere, shows. The
error tests edit a copy of the MobileNetV2 file.
"""

import re
import shutil

import h5py
import keras
import numpy as np
import pytest

from deeplab_tf.backbones import build_backbone
from deeplab_tf.backbones import load_weights_by_name


def assert_stock_weights(model, reference):
    """Asserts that the weighted layers of `model` are those of the cut stock model and that
    each holds the stock weights of its name."""
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert weighted == {layer.name for layer in reference.features.layers if layer.weights}
    for name in weighted:
        for got, want in zip(model.get_layer(name).get_weights(),
                             reference.model.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)


def edited_copy(source, tmp_path, edit):
    """Returns the path of a copy of the weight file `source`, changed by `edit(h5py.File)`."""
    path = str(tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5")
    shutil.copy(source, path)
    with h5py.File(path, "r+") as file:
        edit(file)
    return path


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet50", "resnet101", "vgg16"])
def test_backbone_holds_every_stock_weight(stock, name):
    """At output stride 8 and 16, every weighted layer holds the stock weights of its name."""
    reference = stock(name)
    for output_stride in (8, 16):
        model = build_backbone(name, output_stride, weights=reference.weights_path,
                               **reference.kwargs)
        assert_stock_weights(model, reference)


def test_layers_after_the_cut_are_ignored(stock):
    """The file holds MobileNetV2's Conv_1 (after the P5 cut); the cut model loads without it."""
    reference = stock("mobilenet_v2")
    with h5py.File(reference.weights_path, "r") as file:
        stored = file.attrs["layer_names"]
    assert stored.dtype.kind == "S" and b"Conv_1" in stored.tolist()
    stock_model = keras.applications.MobileNetV2(include_top=False, weights=None,
                                                 input_shape=(None, None, 3), **reference.kwargs)
    features = keras.Model(stock_model.input, stock_model.get_layer("block_16_project_BN").output)
    loaded = load_weights_by_name(features, reference.weights_path)
    assert loaded == [layer.name for layer in features.layers if layer.weights]
    assert "Conv_1" not in loaded
    assert_stock_weights(build_backbone("mobilenet_v2", 16, weights=reference.weights_path,
                                        alpha=0.35), reference)


def test_weights_nested_under_model_weights(stock, tmp_path):
    """Files written by `model.save` hold the same layout under the group "model_weights"."""
    reference = stock("mobilenet_v2")
    path = tmp_path / "mobilenet_v2_full_model.h5"
    with h5py.File(reference.weights_path, "r") as source, h5py.File(path, "w") as target:
        source.copy(source, target, name="model_weights")
    assert_stock_weights(build_backbone("mobilenet_v2", 32, weights=path, alpha=0.35), reference)


def test_missing_layer_names_the_file_and_the_layer(stock, tmp_path):
    def drop_block_5_project(file):
        del file["block_5_project"]
        names = file.attrs["layer_names"]
        file.attrs["layer_names"] = names[names != b"block_5_project"]

    path = edited_copy(stock("mobilenet_v2").weights_path, tmp_path, drop_block_5_project)
    message = f"{path}: layer 'block_5_project' of the model is missing from the file."
    with pytest.raises(ValueError, match=re.escape(message)):
        build_backbone("mobilenet_v2", 32, weights=path, alpha=0.35)


def test_wrong_shape_names_the_layer_and_both_shapes(stock, tmp_path):
    reference = stock("mobilenet_v2")
    kernel = reference.model.get_layer("block_5_project").kernel
    wrong = (*kernel.shape[:-1], kernel.shape[-1] + 1)

    def widen_block_5_project(file):
        group = file["block_5_project"]
        weight_name = group.attrs["weight_names"][0].decode("utf8")
        del group[weight_name]
        group.create_dataset(weight_name, data=np.zeros(wrong, "float32"))

    path = edited_copy(reference.weights_path, tmp_path, widen_block_5_project)
    message = (f"{path}: layer 'block_5_project' weight 0 (block_5_project/kernel) has shape "
               f"{wrong} in the file but {tuple(kernel.shape)} in the model.")
    with pytest.raises(ValueError, match=re.escape(message)):
        build_backbone("mobilenet_v2", 32, weights=path, alpha=0.35)


def test_nothing_is_assigned_unless_every_layer_fits(stock, tmp_path):
    path = edited_copy(stock("mobilenet_v2").weights_path, tmp_path,
                       lambda file: file.__delitem__("block_16_project"))
    model = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                           input_shape=(None, None, 3))
    before = [np.asarray(w) for w in model.weights]
    with pytest.raises(ValueError, match="'block_16_project' of the model is missing"):
        load_weights_by_name(model, path)
    for got, want in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_files_that_are_not_keras_weights_are_named(stock, tmp_path):
    text = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    text.write_text("<html>404 Not Found</html>")
    with pytest.raises(ValueError, match=re.escape(f"{text}: not an HDF5 file")):
        build_backbone("resnet50", weights=text)
    keras3 = tmp_path / "mobilenet_v2.weights.h5"  # HDF5, but Keras 3's own layout
    stock("mobilenet_v2").model.save_weights(keras3)
    with pytest.raises(ValueError, match=re.escape(f"{keras3}: not a Keras HDF5 weights file")):
        build_backbone("mobilenet_v2", weights=keras3, alpha=0.35)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(FileNotFoundError, match=re.escape(repr(str(path)))):
        load_weights_by_name(keras.Sequential(), path)
