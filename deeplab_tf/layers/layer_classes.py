"""Switching the class of a built model's layers in place, for the speed choices."""

import keras


def switch_layer_class(model: keras.Model, keras_class: type, subclass: type) -> int:
    """Makes every layer of `model` (nested models and layers included) whose class is exactly
    `keras_class` a `subclass` of it, in place: same state, weights and config, only the methods
    change (backbones are built by code we do not write, so their layers cannot be built as the
    subclass). Layers of other subclasses of `keras_class` are left alone. Returns how many
    layers were switched."""
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if type(layer) is keras_class]
    for layer in layers:
        layer.__class__ = subclass
    return len(layers)
