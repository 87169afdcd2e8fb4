"""The official TF.js DeepLabv3 MobileNetV2 weights (`deeplabv3_mnv2_pascal_trainval`, batch
norms folded by tensorflowjs) mapped onto `official_mobilenet_v2.build_official_mobilenet_v2`.

How tensorflowjs stores each official scope (e.g. `MobilenetV2/expanded_conv_7/expand`):
- a convolution followed by a batch norm: kernel `{scope}/Conv2D/merged_input` (HWIO, batch
  norm scale folded in) and bias `{scope}/BatchNorm/FusedBatchNorm/Offset`;
- a depthwise convolution: the official kernel `{scope}/depthwise_weights` [3, 3, C, 1], then a
  per-channel `{scope}/BatchNorm/FusedBatchNorm/Scaled` and `.../Offset`; the Keras kernel is
  `depthwise_weights * Scaled` and the bias `Offset`;
- the classifier: `logits/semantic/weights` and `logits/semantic/biases`.
The official head concatenates [image_pooling, aspp0], `ASPP` [1x1, image pooling]: the two
halves of the projection kernel's input channels are swapped.

Besides weights the file holds the preprocessing's three float constants (checked against
`official_mobilenet_v2`'s) and int32 shape constants of the graph (sizes, paddings, axes; not
weights, ignored). Every other float tensor must have a place in the model.
"""

import keras
import numpy as np

from deeplab_tf.pretrained import official_mobilenet_v2 as official
from deeplab_tf.pretrained.source_tensors import SourceFileError, SourceTensorError, SourceTensors

BLOCKS = 16
"""Inverted residual blocks after the first (`expanded_conv_1` ... `expanded_conv_16`)."""
PREPROCESSING_CONSTANTS = {
    "mul_1/x": np.float32(2.0 / 255.0),
    "ToFloat/x": np.float32(1.0),
    "Reshape": np.full((1, 1, 3), official.MEAN_PIXEL, np.float32),
}
"""Float constants of the official graph's preprocessing, x * `mul_1/x` - `ToFloat/x` after padding
with `Reshape` (the mean pixel): what `official_mobilenet_v2.preprocess` computes."""


class UnusedTensorError(SourceTensorError, ValueError):
    """Float tensors of the file that have no place in the model (names them and the file)."""


def official_layers() -> list[tuple[str, str, str]]:
    """Returns [(official scope, Keras layer name, kind), ...] for every weighted layer of the
    official model, in graph order; kind is "conv", "depthwise", "projection" or "logits"."""
    layers = [("MobilenetV2/Conv", "Conv1", "conv"),
              ("MobilenetV2/expanded_conv/depthwise", "expanded_conv_depthwise", "depthwise"),
              ("MobilenetV2/expanded_conv/project", "expanded_conv_project", "conv")]
    for block in range(1, BLOCKS + 1):
        scope = f"MobilenetV2/expanded_conv_{block}"
        layers += [(f"{scope}/expand", f"block_{block}_expand", "conv"),
                   (f"{scope}/depthwise", f"block_{block}_depthwise", "depthwise"),
                   (f"{scope}/project", f"block_{block}_project", "conv")]
    return layers + [("aspp0", "aspp_1x1_conv", "conv"),
                     ("image_pooling", "aspp_pool_conv", "conv"),
                     ("concat_projection", "aspp_project_conv", "projection"),
                     ("logits/semantic", official.LOGITS_LAYER, "logits")]


def load_tfjs_mobilenet_v2(model: keras.Model, tensors: SourceTensors) -> int:
    """Sets every weight of `model` (from `build_official_mobilenet_v2`) to the official TF.js
    weights `tensors` (`read_tfjs_graph_model(dir).weights`).

    Returns the number of official tensors used. Nothing is set unless every tensor fits:
    raises `MissingTensorError` / `TensorShapeError` (one line, naming tensor, shapes and file)
    for a missing or wrongly shaped tensor, `SourceFileError` for a preprocessing constant of
    another value, `UnusedTensorError` for a float tensor with no place in the model, and
    ValueError if `model` lacks a layer or has a weighted layer the official model has not."""
    layers = _weighted_layers(model)
    values, used = {}, set()
    for scope, layer_name, kind in official_layers():
        if layer_name not in layers:
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r} for the official {scope!r}")
        values[layer_name], names = _layer_weights(layers[layer_name], scope, kind, tensors)
        used.update(names)
    unknown = sorted(set(layers) - set(values))
    if unknown:
        raise ValueError(f"model {model.name!r} has weighted layers with no official counterpart: {unknown}")
    used.update(_check_preprocessing(tensors))
    unused = sorted(name for name in tensors if name not in used and tensors[name].dtype == np.float32)
    if unused:
        raise UnusedTensorError(f"{len(unused)} float tensors of {tensors.path} have no place in the model: "
                                f"{', '.join(repr(name) for name in unused[:5])}{' ...' if len(unused) > 5 else ''}")
    for layer_name, weights in values.items():
        layers[layer_name].set_weights(weights)
    return len(used)


def _weighted_layers(model: keras.Model) -> dict:
    """Returns {name: layer} of the layers of `model` (nested models searched, not listed) that own weights."""
    return {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if layer.weights and not isinstance(layer, keras.Model)}


def _layer_weights(layer, scope: str, kind: str, tensors: SourceTensors) -> tuple[list, list]:
    """Returns ([kernel, bias] float32 arrays for `layer`, [the official tensor names read])."""
    kernel_shape, bias_shape = (tuple(weight.shape) for weight in layer.weights)
    if kind == "logits":
        names = [f"{scope}/weights", f"{scope}/biases"]
        return [np.array(tensors.tensor(names[0], kernel_shape)), np.array(tensors.tensor(names[1], bias_shape))], names
    offset = f"{scope}/BatchNorm/FusedBatchNorm/Offset"
    if kind == "depthwise":
        names = [f"{scope}/depthwise_weights", f"{scope}/BatchNorm/FusedBatchNorm/Scaled", offset]
        scaled = tensors.tensor(names[1], bias_shape)
        kernel = tensors.tensor(names[0], kernel_shape) * scaled.reshape(kernel_shape[2:])
        return [kernel, np.array(tensors.tensor(offset, bias_shape))], names
    names = [f"{scope}/Conv2D/merged_input", offset]
    kernel = np.array(tensors.tensor(names[0], kernel_shape))
    if kind == "projection":  # official input channels [image_pooling, aspp0] -> ours [1x1, pooling]
        half = kernel_shape[2] // 2
        kernel = np.concatenate([kernel[:, :, half:], kernel[:, :, :half]], axis=2)
    return [kernel, np.array(tensors.tensor(offset, bias_shape))], names


def _check_preprocessing(tensors: SourceTensors) -> list:
    """Returns the names of `PREPROCESSING_CONSTANTS`; raises `SourceFileError` if one differs
    from what `official_mobilenet_v2.preprocess` computes."""
    for name, expected in PREPROCESSING_CONSTANTS.items():
        value = tensors.tensor(name, expected.shape)
        if not np.allclose(value, expected, rtol=1e-6, atol=0):
            raise SourceFileError(f"preprocessing constant {name!r} of {tensors.path} is {value.ravel().tolist()}, "
                                  f"official_mobilenet_v2.preprocess uses {expected.ravel().tolist()}")
    return list(PREPROCESSING_CONSTANTS)
