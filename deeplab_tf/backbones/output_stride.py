"""Re-purpose a functional Keras model to a denser output stride with atrous convolution.

DeepLab's rule (Chen et al., arXiv:1606.00915, Sec. 3.1; TF reference:
`resnet_utils.stack_blocks_dense` and the `output_stride` loop of slim's `mobilenet.py`): walk
the layers in topological order, tracking for every tensor its `stride` (input pixels per
pixel, starting at 1) and atrous `rate` (starting at 1). A layer with stride `s > 1` whose input
is already at `output_stride` is given stride 1 and dilation `rate`, and `rate *= s` for all
that follows; otherwise it keeps its stride and `stride *= s`. Every later convolution with a
kernel larger than 1x1 (depthwise included) gets dilation `rate`. Pooling layers follow the
stride rule but are not dilated.

A layer whose stride is removed must keep its input size: if it pads "valid" behind a
`ZeroPadding2D` (Keras MobileNetV2's `block_N_pad`, `((0, 1), (0, 1))`), that padding becomes
the symmetric "same" padding of its dilated kernel; without one, the layer pads "same".

Multi-grid (DeepLabv3, arXiv:1706.05587, Sec. 3.2) multiplies the dilation of named layers by a
per-layer factor on top of this rule (`rate_multipliers`), without changing the rate of what
follows: e.g. ResNet's `conv5_block{1,2,3}_2_conv` get `rate * (1, 2, 4)`.

A dilated `Conv2D` / `DepthwiseConv2D` becomes deeplab_tf's `AtrousConv2D` /
`AtrousDepthwiseConv2D` with its default implementation: Keras runs a dilated `Conv2D` through
tf.nn.convolution's space-to-batch path, 1.4-1.9x slower per training step here than the direct
`tf.nn.conv2d(dilations=rate)` of `AtrousConv2D` (BENCHMARKS.md, backbone dilation). Other
dilated layers keep their Keras class. The implementation only changes speed; it is set on the
built model's layers (`deeplab_tf.layers.speed_choices.apply_speed_choices`).
"""

import keras

from deeplab_tf.layers import AtrousConv2D
from deeplab_tf.layers import AtrousDepthwiseConv2D
from deeplab_tf.layers.padding import same_padding

OUTPUT_STRIDES = (8, 16, 32)

_ATROUS_SHARED_ARGS = ("kernel_size", "padding", "use_bias", "activation", "bias_initializer",
                       "bias_regularizer", "name", "dtype", "trainable")
_ATROUS_LAYERS = {
    keras.layers.Conv2D: (AtrousConv2D, ("filters", "kernel_initializer", "kernel_regularizer")),
    keras.layers.DepthwiseConv2D: (
        AtrousDepthwiseConv2D,
        ("depth_multiplier", "depthwise_initializer", "depthwise_regularizer"),
    ),
}


def check_output_stride(output_stride):
    """Raises ValueError, naming the valid values, unless `output_stride` is in OUTPUT_STRIDES."""
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"`output_stride` must be one of {OUTPUT_STRIDES}. Received: "
            f"output_stride={output_stride!r}"
        )


def _window(layer):
    """Returns the side of `layer`'s square kernel or pooling window, 1 if it has none."""
    size = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None) or (1,)
    return size[0]


def _input_state(layer, node, states):
    """Returns the (stride, rate) shared by all inputs of `node`; raises if they differ."""
    found = {states[id(tensor)] for tensor in node.input_tensors}
    if len(found) != 1:
        raise ValueError(
            f"Layer {layer.name!r} merges inputs at different (stride, rate): {sorted(found)}."
        )
    return found.pop()


def _only_node(layer):
    """Returns the single call (Node) of `layer`; raises for layers called several times."""
    if len(layer._inbound_nodes) != 1:
        raise NotImplementedError(
            f"Layer {layer.name!r} is called {len(layer._inbound_nodes)} times; shared layers "
            "are not supported."
        )
    return layer._inbound_nodes[0]


def _restore_input_size(layer, node, window, rate, plan):
    """Adds to `plan` what keeps a "valid" layer that lost its stride at its input size."""
    producer = node.input_tensors[0]._keras_history.operation
    if isinstance(producer, keras.layers.ZeroPadding2D):
        if len(producer._outbound_nodes) != 1:
            raise NotImplementedError(
                f"Padding layer {producer.name!r} before {layer.name!r} has several consumers."
            )
        plan[producer.name] = {"padding": (same_padding(window, rate),) * 2}
    else:
        plan[layer.name]["padding"] = "same"


def dilation_plan(model, output_stride, rate_multipliers=None):
    """Computes which layers of `model` change, and how, to reach `output_stride`.

    Args:
        model: flat functional `keras.Model` (no nested models, no shared layers) with one
            image input.
        output_stride: int. One of `OUTPUT_STRIDES`.
        rate_multipliers: dict or `None`. Layer name -> int factor multiplying the dilation
            the rule gives that layer (multi-grid). Each name must be a convolution with a
            kernel larger than 1x1. Defaults to `None` (no factors).

    Returns:
        Dict mapping layer name -> dict of config entries to override, e.g.
        `{"strides": (1, 1), "dilation_rate": (2, 2)}` or, for a `ZeroPadding2D`,
        `{"padding": ((2, 2), (2, 2))}`. Unchanged layers are absent.
    """
    check_output_stride(output_stride)
    multipliers = dict(rate_multipliers or {})
    states = {id(tensor): (1, 1) for tensor in model.inputs}
    plan = {}
    for layer in model.operations:
        node = _only_node(layer)
        if not node.input_tensors:  # InputLayer
            continue
        stride, rate = _input_state(layer, node, states)
        layer_stride = getattr(layer, "strides", (1,))[0]
        window = _window(layer)
        layer_rate = rate  # dilation of this layer, if it has a spatial kernel
        if layer_stride > 1 and stride == output_stride:
            plan[layer.name] = {"strides": (1, 1)}
            if layer.padding == "valid" and window > 1:
                _restore_input_size(layer, node, window, rate, plan)
            rate *= layer_stride
        elif layer_stride > 1:
            stride *= layer_stride
        if hasattr(layer, "dilation_rate") and window > 1:
            layer_rate *= multipliers.pop(layer.name, 1)
            if layer_rate > 1:
                plan.setdefault(layer.name, {})["dilation_rate"] = (layer_rate, layer_rate)
        states.update((id(tensor), (stride, rate)) for tensor in node.output_tensors)
    if multipliers:
        raise ValueError(
            f"`rate_multipliers` name layers that are not convolutions larger than 1x1 of "
            f"{model.name!r}: {sorted(multipliers)}."
        )
    return plan


def _clone_layer(layer, overrides):
    """Returns a fresh copy of `layer` (same name) with `overrides` applied to its config: a
    deeplab_tf atrous layer (default implementation) for a dilated `Conv2D` /
    `DepthwiseConv2D`, a layer of `layer`'s own class otherwise."""
    config = layer.get_config()
    config.update(overrides)
    if config.get("dilation_rate", (1, 1))[0] == 1 or type(layer) not in _ATROUS_LAYERS:
        return layer.__class__.from_config(config)
    atrous_cls, own_args = _ATROUS_LAYERS[type(layer)]
    kwargs = {key: config[key] for key in _ATROUS_SHARED_ARGS + own_args}
    return atrous_cls(rate=config["dilation_rate"][0], **kwargs)


def copy_weights_by_name(source, target):
    """Sets every weighted layer of `target` to the weights of the same-named `source` layer.

    Returns:
        None. Raises ValueError naming the first weighted `target` layer that has no
        counterpart in `source` or whose weights do not fit.
    """
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            source_layer = source.get_layer(layer.name)
        except ValueError as error:
            raise ValueError(
                f"Layer {layer.name!r} of {target.name!r} has no counterpart in "
                f"{source.name!r}; its weights cannot be copied."
            ) from error
        layer.set_weights(source_layer.get_weights())


def dilate_to_output_stride(model, output_stride, rate_multipliers=None):
    """Clones `model` with strides and dilations changed to reach `output_stride`.

    Args:
        model: functional `keras.Model` mapping NHWC images (any size) to its features.
        output_stride: int. One of `OUTPUT_STRIDES`; the largest stride of the result.
        rate_multipliers: dict or `None`. Extra dilation factor per layer name, as for
            `dilation_plan`. Defaults to `None`.

    Returns:
        New `keras.Model` with the inputs and output structure of `model`, the same layer
        names and a copy of its weights. An output of stride `s` in `model` has stride
        `min(s, output_stride)`, so it is `s / min(s, output_stride)` times denser. Every
        dilated `Conv2D` / `DepthwiseConv2D` of the result is an `AtrousConv2D` /
        `AtrousDepthwiseConv2D` with its default implementation.
    """
    plan = dilation_plan(model, output_stride, rate_multipliers)
    clone = keras.models.clone_model(
        model, clone_function=lambda layer: _clone_layer(layer, plan.get(layer.name, {})))
    copy_weights_by_name(model, clone)
    return clone
