"""`clone_from_configs`: edited configs take effect, dropped layers become the identity, nested
models stay nested and shared, and the original is untouched; outputs are checked against NumPy
formulas of the edited model."""

import keras
import numpy as np

from deeplab_tf.models.layer_clones import clone_from_configs


def dense_model():
    """x -> Dense(3, name="first") -> shared nested [Dense(3, name="inner")] twice -> scale layer."""
    keras.utils.set_random_seed(0)
    inner_input = keras.Input((3,))
    inner = keras.Model(inner_input, keras.layers.Dense(3, name="inner")(inner_input), name="nested")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="first")(inputs)
    x = inner(inner(x))
    outputs = keras.layers.Rescaling(2.0, name="double")(x)
    return keras.Model(inputs, outputs)


def copy_weights(pairs):
    for original, clone in pairs:
        clone.set_weights(original.get_weights())


def test_edited_configs_and_dropped_layers_match_numpy():
    model = dense_model()
    double = model.get_layer("double")

    def relu_on_first(layer, config):
        if layer.name == "first":
            config["activation"] = "relu"

    clone, pairs = clone_from_configs(model, relu_on_first, dropped={id(double)})
    copy_weights(pairs)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    first_kernel, first_bias = model.get_layer("first").get_weights()
    inner_kernel, inner_bias = model.get_layer("nested").get_layer("inner").get_weights()
    hidden = np.maximum(x @ first_kernel + first_bias, 0.0)
    expected = (hidden @ inner_kernel + inner_bias) @ inner_kernel + inner_bias  # no doubling
    np.testing.assert_allclose(clone(x), expected, rtol=1e-5, atol=1e-5)
    assert clone.get_layer("first").activation is keras.activations.relu
    assert model.get_layer("first").activation is keras.activations.linear  # original untouched
    np.testing.assert_allclose(model(x), 2.0 * (
        (x @ first_kernel + first_bias) @ inner_kernel + inner_bias) @ inner_kernel + 2.0 * inner_bias,
        rtol=1e-5, atol=1e-5)


def test_pairs_name_every_layer_once_and_the_nested_model_stays_shared():
    model = dense_model()
    clone, pairs = clone_from_configs(model, lambda layer, config: None)
    originals = [original.name for original, _ in pairs]
    assert sorted(originals) == ["double", "first", "inner"]
    assert all(original is not copy and original.name == copy.name for original, copy in pairs)
    nested = [layer for layer in clone.layers if isinstance(layer, keras.Model)]
    assert [layer.name for layer in nested] == ["nested"]
    assert nested[0] is not model.get_layer("nested")
