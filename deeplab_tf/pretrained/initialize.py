"""Initialising a model of an experiment (batch norms included, any number of classes) from a
published model whose batch norms are folded into its convolutions.

A folded convolution computes `conv(x, W) + b`. In a model where the same convolution (no
bias) is followed by a batch norm, the same function is `W` in the convolution and a batch norm
that adds `b`: gamma 1, beta `b`, moving mean 0, moving variance `1 - epsilon` (so that
`gamma / sqrt(variance + epsilon)` is exactly 1). Train such a model with frozen batch norms
(`train.train_batch_norm=false`): batch statistics would replace that identity.
"""

import keras
import numpy as np

from deeplab_tf.models.fold_batch_norm import foldable_pairs
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER


def weighted_layers(model: keras.Model) -> dict:
    """Returns {name: layer} of every layer of `model` that owns weights, nested sub-models
    searched (the sub-models themselves not listed)."""
    return {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if layer.weights and not isinstance(layer, keras.Model)}


def initialize_from_folded(model: keras.Model, folded: keras.Model, log=None) -> list[str]:
    """Sets the weights of `model` from `folded` (a model with the same layer names whose batch
    norms are folded, e.g. an imported official model), layer by layer.

    Every weighted layer of `folded` must exist in `model` with the same kernel shape. A
    convolution that `model` follows by a batch norm takes the kernel, and the batch norm the
    identity plus the folded bias (module docstring); any other layer takes the weights as they
    are. The classifier `CLASSIFIER_LAYER` is skipped (left as initialised, and logged) when its
    number of classes differs: a new classifier for another dataset. Layers of `model` that
    `folded` lacks (e.g. a v3+ decoder) keep their initialisation.

    Returns the names of the layers of `model` that were set. Raises ValueError naming the
    first layer with no counterpart in `model` or of another shape, before setting anything.
    """
    targets, sources = weighted_layers(model), weighted_layers(folded)
    batch_norm_after = {conv: bn for conv, bn in foldable_pairs(model)}
    assignments = {}
    for name, source in sources.items():
        if name not in targets:
            raise ValueError(f"the pretrained layer {name!r} has no counterpart in model {model.name!r}")
        kernel, bias = source.get_weights()
        target_kernel = tuple(targets[name].weights[0].shape)
        if name == CLASSIFIER_LAYER and target_kernel[-1] != kernel.shape[-1]:
            if log:
                log(f"Classifier {name!r} left at its initialisation: {kernel.shape[-1]} pretrained classes, "
                    f"{target_kernel[-1]} here")
            continue
        if target_kernel != kernel.shape:
            raise ValueError(f"layer {name!r}: pretrained kernel {kernel.shape}, model {model.name!r} {target_kernel}")
        assignments[name] = (kernel, bias)
    for name, (kernel, bias) in assignments.items():
        layer = targets[name]
        if name in batch_norm_after:
            layer.set_weights([kernel] + ([np.zeros_like(bias)] if layer.use_bias else []))
            _set_identity_plus(targets[batch_norm_after[name]], bias)
        else:
            layer.set_weights([kernel, bias])
    return sorted(assignments)


def layers_left(model: keras.Model, assigned: list[str]) -> list[str]:
    """Returns the names of the weighted layers of `model` (`weighted_layers`) that
    `initialize_from_folded` left at their initialisation, given the names it returned
    (`assigned`): neither one of them nor the batch norm that follows one."""
    batch_norm_after = dict(foldable_pairs(model))
    done = set(assigned) | {batch_norm_after[name] for name in assigned if name in batch_norm_after}
    return sorted(set(weighted_layers(model)) - done)


def _set_identity_plus(batch_norm, bias: np.ndarray) -> None:
    """Makes the inference batch norm `batch_norm` compute `x + bias`."""
    values = {"gamma": np.ones_like(bias), "beta": bias, "moving_mean": np.zeros_like(bias),
              "moving_variance": np.full_like(bias, 1.0 - batch_norm.epsilon)}
    batch_norm.set_weights([values[weight.path.split("/")[-1]] for weight in batch_norm.weights])
