import numpy as np
import pytest

from deeplab_tf.pretrained.source_tensors import (
    MissingTensorError,
    SourceTensorError,
    SourceTensors,
    TensorShapeError,
)

PATH = "/data/model.ckpt-30000"


@pytest.fixture
def tensors():
    return SourceTensors(
        {
            "MobilenetV2/Conv/weights": np.zeros((3, 3, 3, 32), np.float32),
            "MobilenetV2/Conv/BatchNorm/gamma": np.ones(32, np.float32),
            "logits/semantic/biases": np.arange(21, dtype=np.float32),
        },
        PATH,
    )


def test_is_a_read_only_mapping(tensors):
    assert len(tensors) == 3
    assert set(tensors) == {"MobilenetV2/Conv/weights", "MobilenetV2/Conv/BatchNorm/gamma", "logits/semantic/biases"}
    assert "logits/semantic/biases" in tensors and "nothing" not in tensors
    assert tensors.get("nothing") is None
    assert tensors.path == PATH
    with pytest.raises(ValueError):
        tensors["logits/semantic/biases"][0] = 5.0
    with pytest.raises(TypeError):
        tensors["x"] = np.zeros(1)


def test_the_callers_arrays_stay_writeable():
    array = np.zeros(4, np.float32)
    SourceTensors({"a": array}, PATH)
    array[0] = 1.0
    assert array.flags.writeable


def test_tensor_returns_the_array_with_or_without_a_shape_check(tensors):
    np.testing.assert_array_equal(tensors.tensor("logits/semantic/biases"), np.arange(21))
    assert tensors.tensor("MobilenetV2/Conv/weights", (3, 3, 3, 32)).shape == (3, 3, 3, 32)


def test_missing_tensor_names_tensor_file_and_closest_names(tensors):
    with pytest.raises(MissingTensorError) as error:
        tensors.tensor("MobilenetV2/Conv/weight")
    message = str(error.value)
    assert "'MobilenetV2/Conv/weight'" in message and PATH in message
    assert "closest names: 'MobilenetV2/Conv/weights'" in message
    assert "\n" not in message
    assert isinstance(error.value, SourceTensorError) and isinstance(error.value, KeyError)


def test_missing_tensor_without_close_names_says_so_in_one_line(tensors):
    with pytest.raises(MissingTensorError, match=r"^no tensor 'zzz' in /data/model.ckpt-30000 \(3 tensors\)$"):
        tensors["zzz"]


def test_wrong_shape_names_tensor_both_shapes_and_file(tensors):
    with pytest.raises(TensorShapeError) as error:
        tensors.tensor("MobilenetV2/Conv/weights", (3, 3, 3, 16))
    assert str(error.value) == (
        f"tensor 'MobilenetV2/Conv/weights' has shape (3, 3, 3, 32), expected (3, 3, 3, 16), in {PATH}"
    )
    assert isinstance(error.value, ValueError)
