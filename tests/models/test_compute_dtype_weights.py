"""Convolution weights stored in the compute dtype: a mixed_bfloat16 model and its converted copy
give bit-equal outputs; the converted layers hold the float32 weights rounded to bfloat16 (NumPy's
ml_dtypes rounding as the reference), the batch norms keep float32, and the traced graph casts no
convolution weight; a float32 model is returned as it is."""

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import AtrousConv2D, AtrousDepthwiseConv2D
from deeplab_tf.models.compute_dtype_weights import store_weights_in_compute_dtype


@pytest.fixture
def mixed_bfloat16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


def small_model(seed=0):
    """Conv -> BN -> ReLU -> nested [atrous conv, atrous depthwise, depthwise] -> dense head."""
    keras.utils.set_random_seed(seed)
    inner_input = keras.Input((None, None, 8))
    x = AtrousConv2D(8, 3, rate=2, name="atrous")(inner_input)
    x = AtrousDepthwiseConv2D(3, rate=3, use_bias=True, name="atrous_depthwise")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    inner = keras.Model(inner_input, x, name="inner")
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    x = inner(x)
    outputs = keras.layers.Dense(5, name="head")(x)
    return keras.Model(inputs, outputs)


def test_outputs_are_bit_equal_and_weights_are_the_rounded_float32_ones(mixed_bfloat16):
    model = small_model()
    converted = store_weights_in_compute_dtype(model)
    x = np.random.default_rng(0).normal(size=(2, 17, 23, 3)).astype(np.float32)
    expected = model(x, training=False)
    actual = converted(x, training=False)
    assert actual.dtype == expected.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(actual, np.float32), np.asarray(expected, np.float32))
    originals = {w.path: w for w in model.weights}
    changed = {}
    for weight in converted.weights:
        original = originals[weight.path]
        assert original.dtype == "float32"
        changed[weight.path] = weight.dtype
        if weight.dtype == "bfloat16":
            rounded = np.asarray(original.numpy()).astype(ml_dtypes.bfloat16)
            np.testing.assert_array_equal(np.asarray(weight.numpy()).view(np.uint16), rounded.view(np.uint16))
        else:
            np.testing.assert_array_equal(weight.numpy(), original.numpy())
    bfloat16 = {path.split("/")[-2] for path, dtype in changed.items() if dtype == "bfloat16"}
    assert bfloat16 == {"stem", "atrous", "atrous_depthwise", "depthwise", "head"}
    assert {dtype for path, dtype in changed.items() if "stem_bn" in path} == {"float32"}
    assert converted.get_layer("stem_bn").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("stem").kernel.dtype == "float32"  # the original is not changed


def test_the_traced_graph_casts_no_convolution_weight(mixed_bfloat16):
    def weight_casts(model):
        graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec([1, 9, 9, 3])).graph
        functions = [graph] + [f.graph for f in graph._functions.values() if hasattr(f, "graph")]
        return sum(op.type == "Cast" and op.inputs[0].op.type == "ReadVariableOp"
                   for g in functions for op in g.get_operations())

    model = small_model()
    # Before: the kernel and bias of each of the 5 layers cast at every call; the batch
    # norm's float32 statistics are read as they are.
    assert weight_casts(model) == 10
    assert weight_casts(store_weights_in_compute_dtype(model)) == 0


def test_a_float32_model_is_returned_as_it_is():
    model = small_model()
    assert store_weights_in_compute_dtype(model, log=pytest.fail) is model
