"""Initialising a model with batch norms from a model with batch norms folded: the unfolded
model computes the folded one's function; a classifier of another size is left alone; layers
that do not fit are refused before anything is set."""

import keras
import numpy as np
import pytest

from deeplab_tf.models.fold_batch_norm import fold_batch_norm
from deeplab_tf.pretrained.initialize import initialize_from_folded

IMAGES = np.random.default_rng(0).normal(size=(2, 12, 14, 3)).astype(np.float32)


def tiny(num_classes=4, extra=False, seed=1):
    """conv -> BN -> ReLU -> depthwise -> BN -> ReLU -> [extra conv] -> 1x1 "logits" (bias)."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="conv")(images)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-3, name="conv_bn")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-5, name="depthwise_bn")(x))
    if extra:
        x = keras.layers.Conv2D(6, 1, name="decoder")(x)
    model = keras.Model(images, keras.layers.Conv2D(num_classes, 1, name="logits")(x))
    rng = np.random.default_rng(seed)
    model.set_weights([np.abs(rng.normal(1, 0.3, w.shape)) if "variance" in w.path else rng.normal(0, 0.5, w.shape)
                       for w in model.weights])
    return model


def test_unfolded_model_computes_the_folded_function():
    folded = fold_batch_norm(tiny())
    model = tiny(seed=7)  # other weights everywhere
    assert initialize_from_folded(model, folded) == ["conv", "depthwise", "logits"]
    np.testing.assert_allclose(model(IMAGES, training=False), folded(IMAGES), rtol=1e-5, atol=1e-5)
    batch_norm = model.get_layer("conv_bn")
    scale = batch_norm.gamma.numpy() / np.sqrt(batch_norm.moving_variance.numpy() + batch_norm.epsilon)
    np.testing.assert_allclose(scale, 1.0, atol=1e-6)  # the identity, plus the folded bias in beta


def test_classifier_of_another_size_is_left_and_new_layers_kept():
    folded = fold_batch_norm(tiny(num_classes=21))
    model = tiny(num_classes=11, extra=True, seed=3)
    logits, decoder = (model.get_layer(name).get_weights() for name in ("logits", "decoder"))
    lines = []
    assert initialize_from_folded(model, folded, log=lines.append) == ["conv", "depthwise"]
    assert lines == ["Classifier 'logits' left at its initialisation: 21 pretrained classes, 11 here"]
    for name, before in (("logits", logits), ("decoder", decoder)):
        for got, want in zip(model.get_layer(name).get_weights(), before):
            np.testing.assert_array_equal(got, want)


def test_layers_that_do_not_fit_are_refused_before_any_weight_is_set():
    model = tiny(seed=5)
    before = [w.copy() for w in model.get_weights()]
    images = keras.Input((None, None, 3))
    wider = keras.Model(images, keras.layers.Conv2D(8, 3, name="conv")(images))
    with pytest.raises(ValueError, match=r"layer 'conv': pretrained kernel \(3, 3, 3, 8\).*\(3, 3, 3, 6\)"):
        initialize_from_folded(model, wider)
    stranger = keras.Model(images, keras.layers.Conv2D(8, 3, name="fc9")(images))
    with pytest.raises(ValueError, match="'fc9' has no counterpart"):
        initialize_from_folded(model, stranger)
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
