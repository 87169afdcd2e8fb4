"""Folds inference-mode batch normalization into the convolution before it, for export.

At inference a BatchNormalization layer is a per-channel affine map,
`y = (x - moving_mean) * gamma / sqrt(moving_variance + epsilon) + beta`, so after a
convolution `x = conv(u, W) + b` it can be merged into the convolution's weights:

    s  = gamma / sqrt(moving_variance + epsilon)       # per output channel
    W' = W * s                                         # along the output-channel axis
    b' = (b - moving_mean) * s + beta                  # b = 0 for a bias-free convolution

For a depthwise kernel `[k, k, C, M]` output channel `c * M + m` is scaled by `s[c * M + m]`.
`gamma` is 1 when the layer has `scale=False` and `beta` 0 when it has `center=False`.

A BatchNormalization is folded when all of these hold, in the functional graph it is called in:
- its only input is the output of a `keras.layers.Conv2D`, `keras.layers.DepthwiseConv2D`,
  `deeplab_tf.layers.AtrousConv2D` or `deeplab_tf.layers.AtrousDepthwiseConv2D` without an
  activation, in "channels_last", normalising the last axis;
- that convolution output has no other consumer and is not a model output;
- the convolution and the batch norm are each called once in that graph.
Every other batch norm is kept as it is: the one inside `SeparableAtrousConv2D`, the one after
its pointwise convolution (Xception-65, DeepLabv3+ `separable`), batch norms after a
concatenation, an addition or a sub-model's output, and so on.

Nested functional models (the backbone sub-model of `build_deeplab`, the network that
`build_multi_scale` calls once per scale) are folded recursively and stay nested; a sub-model
called several times is folded once and its clone is shared, as the original was.

The folded model is an inference model: the folded batch norms are gone, so `training=True`
no longer normalises with batch statistics. Use it for export and benchmarks, never train it.
"""

import keras
import numpy as np

from deeplab_tf.layers.atrous_conv import AtrousConv2D, AtrousDepthwiseConv2D
from deeplab_tf.models.layer_clones import clone_from_configs

CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, AtrousConv2D, AtrousDepthwiseConv2D)
_DEPTHWISE = (keras.layers.DepthwiseConv2D, AtrousDepthwiseConv2D)


def fold_batch_norm(model: keras.Model, log=None) -> keras.Model:
    """Returns a new functional model computing `model`'s inference function with every
    foldable BatchNormalization (module docstring) merged into its convolution.

    Args:
        model: `keras.Model`. A functional model (nested functional models allowed). It is not
            changed: the result has its own layers and weights, copied from `model`.
        log: callable or `None`. Called with one line naming how many batch norms were folded
            and how many are left. Defaults to `None` (silent).

    Returns:
        A functional `keras.Model` with the same inputs, outputs and layer names, minus the
        folded BatchNormalization layers; each folded convolution has a bias. To know which
        pairs are folded (e.g. to count them) call `foldable_pairs(model)`.

    Example:
    ```python
    folded = fold_batch_norm(model, log=print)
    np.testing.assert_allclose(folded(x), model(x, training=False), rtol=1e-4, atol=1e-4)
    ```
    """
    pairs = _find_pairs(model)
    folded_convs = {id(conv): bn for conv, bn in pairs}
    folded_bns = {id(bn) for _, bn in pairs}

    def add_bias_to_folded_convs(layer, config):
        if id(layer) in folded_convs:
            config["use_bias"] = True

    folded, copies = clone_from_configs(model, add_bias_to_folded_convs, dropped=folded_bns)
    for layer, clone in copies:
        if id(layer) in folded_convs:
            clone.set_weights(folded_conv_weights(layer, folded_convs[id(layer)]))
        elif id(layer) not in folded_bns:
            clone.set_weights(layer.get_weights())
    if log is not None:
        left = count_batch_norms(folded)
        log(f"Folded {len(pairs)} BatchNormalization layers into convolutions; {left} left")
    return folded


def foldable_pairs(model: keras.Model) -> list:
    """Returns [(convolution layer name, batch norm layer name), ...] that `fold_batch_norm`
    merges, over `model` and its nested functional models (each sub-model counted once)."""
    return [(conv.name, bn.name) for conv, bn in _find_pairs(model)]


def count_batch_norms(model: keras.Model) -> int:
    """Returns the number of BatchNormalization layers in `model`, counting those inside
    nested models and layers (e.g. `SeparableAtrousConv2D`) once each."""
    layers = model._flatten_layers(include_self=False, recursive=True)
    return len({id(layer) for layer in layers if isinstance(layer, keras.layers.BatchNormalization)})


def folded_conv_weights(conv, batch_norm) -> list:
    """Returns [kernel, bias] of `conv` with `batch_norm` (inference mode) folded in, float32
    arrays computed in float64."""
    weights = conv.get_weights()
    kernel = weights[0].astype(np.float64)
    bias = weights[1].astype(np.float64) if conv.use_bias else np.zeros(kernel.shape[-1] * (
        kernel.shape[-2] if isinstance(conv, _DEPTHWISE) else 1))
    mean = _numpy(batch_norm.moving_mean)
    variance = _numpy(batch_norm.moving_variance)
    gamma = _numpy(batch_norm.gamma) if batch_norm.scale else np.ones_like(mean)
    beta = _numpy(batch_norm.beta) if batch_norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + batch_norm.epsilon)
    if isinstance(conv, _DEPTHWISE):  # [k, k, C, M]: output channel c * M + m
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:  # [k, k, C_in / groups, C_out]
        kernel = kernel * scale
    bias = (bias - mean) * scale + beta
    return [kernel.astype(weights[0].dtype), bias.astype(weights[0].dtype)]


def _numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)


def _find_pairs(model):
    """Returns [(conv layer, batch norm layer), ...] foldable in `model` and its nested
    functional models, each model visited once."""
    pairs, seen, pending = [], set(), [model]
    while pending:
        current = pending.pop()
        if id(current) in seen or not isinstance(current, keras.Model) or not hasattr(current, "_nodes_by_depth"):
            continue
        seen.add(id(current))
        pairs += _pairs_in_graph(current)
        pending += [op for op in current.operations if isinstance(op, keras.Model)]
    return pairs


def _pairs_in_graph(model):
    """Returns the foldable (conv, batch norm) pairs among the nodes of one functional model."""
    nodes = [node for depth_nodes in model._nodes_by_depth.values() for node in depth_nodes]
    consumers, calls = {}, {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for tensor in node.input_tensors:
            consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    for tensor in keras.tree.flatten(model.outputs):
        consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    pairs = []
    for node in nodes:
        bn = node.operation
        if not isinstance(bn, keras.layers.BatchNormalization) or node.is_input or len(node.input_tensors) != 1:
            continue
        tensor = node.input_tensors[0]
        conv = tensor._keras_history.operation
        rank = len(tensor.shape)
        if (
            isinstance(conv, CONVOLUTIONS)
            and _is_linear(conv.activation)
            and getattr(conv, "data_format", "channels_last") == "channels_last"
            and bn.axis in (-1, rank - 1)
            and consumers[id(tensor)] == 1
            and calls[id(conv)] == 1
            and calls[id(bn)] == 1
        ):
            pairs.append((conv, bn))
    return pairs


def _is_linear(activation) -> bool:
    return activation is None or activation is keras.activations.linear
