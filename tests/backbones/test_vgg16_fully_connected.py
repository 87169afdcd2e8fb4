"""VGG-16's ImageNet fc1 / fc2 as DeepLab's fc6 / fc7: decimated kernels, loading into every
branch of a DeepLab v1 / v2 model, and errors naming the file and the layer.

DeepLab v1 (arXiv:1412.7062 Sec. 3.1) decimates fc1's 7x7 kernel to 4x4 or 3x3; v2
(arXiv:1606.00915 Sec. 4.1.1) keeps 1,024 of the 4,096 filters of fc6 and fc7. The reference
here is NumPy slicing of the stock model's fc1 / fc2 with the indices written out by hand.
"""

import re

import h5py
import numpy as np
import pytest

from deeplab_tf.backbones.vgg16 import fully_connected_as_convolutions
from deeplab_tf.backbones.vgg16 import has_fully_connected_weights
from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model

# fc6 kernel size -> rows / columns of fc1's 7x7 kernel that decimation keeps
KEPT = {7: [0, 1, 2, 3, 4, 5, 6], 4: [0, 2, 4, 6], 3: [0, 3, 6]}


def reference(fc, kernel_size, channels):
    """Returns the NumPy-decimated fc6 / fc7 [kernel, bias] of the stock fc1 / fc2."""
    (fc1_kernel, fc1_bias), (fc2_kernel, fc2_bias) = fc["fc1"], fc["fc2"]
    rows, step = KEPT[kernel_size], 4096 // channels
    fc6 = fc1_kernel.reshape(7, 7, 512, 4096)[rows][:, rows][:, :, :, ::step]
    fc7 = fc2_kernel[::step, ::step][None, None]
    return {"fc6": [fc6, fc1_bias[::step]], "fc7": [fc7, fc2_bias[::step]]}


def assert_weights_equal(got, want, name):
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        assert g.shape == w.shape, name
        np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("kernel_size, channels", [(7, 4096), (4, 4096), (3, 1024)])
def test_conversion_is_the_decimated_fc_layers(vgg16_top_file, kernel_size, channels):
    path, fc = vgg16_top_file
    assert has_fully_connected_weights(path)
    converted = fully_connected_as_convolutions(path, kernel_size, channels)
    for name, want in reference(fc, kernel_size, channels).items():
        assert_weights_equal(converted[name], want, name)


def test_every_branch_gets_fc6_fc7_and_the_backbone_its_convs(vgg16_top_file):
    """ASPP-like VGG-16 model with LargeFOV branches (3x3, 1024 filters) at two rates."""
    path, fc = vgg16_top_file
    model = build_model(ModelConfig(arch="deeplab_v2", backbone="vgg16", output_stride=8, head="fc", atrous_rates=(6, 12),
                                    fc_kernel_size=3, fc_channels=1024, backbone_weights=path), 21).model
    want = reference(fc, 3, 1024)
    for rate in (6, 12):
        for name in ("fc6", "fc7"):
            assert_weights_equal(model.get_layer("aspp").get_layer(f"{name}_rate{rate}").get_weights(), want[name], name)
    backbone = model.get_layer("vgg16_os8")
    assert_weights_equal(backbone.get_layer("block1_conv1").get_weights(), fc["block1_conv1"], "block1_conv1")


def test_no_top_file_leaves_fc6_at_random_init(stock):
    path = stock("vgg16").weights_path
    assert not has_fully_connected_weights(path)
    model = build_model(ModelConfig(arch="deeplab_v2", backbone="vgg16", output_stride=8, head="fc", atrous_rates=(12,),
                                    fc_kernel_size=3, fc_channels=8, backbone_weights=path), 21).model
    kernel, bias = model.get_layer("aspp").get_layer("fc6_rate12").get_weights()
    assert kernel.shape == (3, 3, 512, 8) and not np.any(bias)  # Glorot kernel, zero bias


def write_fc_file(path, shapes):
    """Writes a Keras-layout HDF5 file with Dense layers `shapes` = {name: [kernel, bias shapes]}
    (empty list: the layer is listed but holds no group)."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.asarray(list(shapes), dtype="S")
        for name, weight_shapes in shapes.items():
            if not weight_shapes:
                continue
            group = file.create_group(name)
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = np.asarray(names, dtype="S")
            for weight_name, shape in zip(names, weight_shapes):
                group.create_dataset(weight_name, shape=shape, dtype="float32")  # zeros, not stored
    return str(path)


GOOD = {"fc1": [(25088, 4096), (4096,)], "fc2": [(4096, 4096), (4096,)]}


@pytest.mark.parametrize("shapes, kernel_size, channels, layer, message", [
    ({**GOOD, "fc2": []}, 3, 1024, "fc2", "missing from the file"),
    ({**GOOD, "fc1": [(4096, 4096), (4096,)]}, 3, 1024, "fc1", r"shapes \[\(4096, 4096\)"),
    (GOOD, 9, 1024, "fc1", "cannot be decimated to 9x9"),
    (GOOD, 3, 1000, "fc1", "channels must divide 4096"),
])
def test_errors_name_the_file_and_the_layer(tmp_path, shapes, kernel_size, channels, layer, message):
    path = write_fc_file(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", shapes)
    with pytest.raises(ValueError, match=f"{re.escape(path)}: layer '{layer}'.*{message}"):
        fully_connected_as_convolutions(path, kernel_size, channels)
