"""Setting the official DeepLabv3 MobileNetV2 weights of one file format onto a model built by
`official_mobilenet_v2.build_official_mobilenet_v2`, all or nothing.

Each format (`tfjs_mobilenet_v2`, `tflite_mobilenet_v2`) says how it stores one official scope
(a `LayerWeights` function); `set_official_weights` walks `mobilenet_v2_names.official_layers`,
checks that every layer fits and that every float tensor of the file was used, then sets them.
"""

from typing import Callable

import keras
import numpy as np

from deeplab_tf.pretrained.initialize import weighted_layers
from deeplab_tf.pretrained.mobilenet_v2_names import official_layers
from deeplab_tf.pretrained.source_tensors import SourceTensorError, SourceTensors

LayerWeights = Callable[[tuple, tuple, str, str, SourceTensors], tuple[list, list]]
"""(kernel shape, bias shape, official scope, kind, tensors) -> ([kernel, bias] float32 arrays
in Keras layout, [the names of the tensors read])."""


class UnusedTensorError(SourceTensorError, ValueError):
    """Float tensors of the file that have no place in the model (names them and the file)."""


def set_official_weights(model: keras.Model, tensors: SourceTensors, layer_weights: LayerWeights,
                         other_used=()) -> int:
    """Sets every weighted layer of `model` from `tensors` through `layer_weights`, once all fit.

    `other_used`: names of tensors the caller checked itself (e.g. preprocessing constants).
    Returns the number of tensors used. Raises what `layer_weights` raises (`MissingTensorError`,
    `TensorShapeError`: one line naming tensor, shapes and file), `UnusedTensorError` for a
    float32 tensor used by no layer, and ValueError if `model` lacks a layer of the official
    model or has a weighted layer the official model has not; nothing is set then."""
    layers = weighted_layers(model)
    values, used = {}, set(other_used)
    for scope, layer_name, kind in official_layers():
        if layer_name not in layers:
            raise ValueError(f"model {model.name!r} has no layer {layer_name!r} for the official {scope!r}")
        kernel_shape, bias_shape = (tuple(weight.shape) for weight in layers[layer_name].weights)
        values[layer_name], names = layer_weights(kernel_shape, bias_shape, scope, kind, tensors)
        used.update(names)
    unknown = sorted(set(layers) - set(values))
    if unknown:
        raise ValueError(f"model {model.name!r} has weighted layers with no official counterpart: {unknown}")
    unused = sorted(name for name in tensors if name not in used and tensors[name].dtype == np.float32)
    if unused:
        raise UnusedTensorError(f"{len(unused)} float tensors of {tensors.path} have no place in the model: "
                                f"{', '.join(repr(name) for name in unused[:5])}{' ...' if len(unused) > 5 else ''}")
    for layer_name, weights in values.items():
        layers[layer_name].set_weights(weights)
    return len(used)
