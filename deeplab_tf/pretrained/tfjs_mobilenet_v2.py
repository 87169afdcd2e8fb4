"""The official TF.js DeepLabv3 MobileNetV2 weights (`deeplabv3_mnv2_pascal_trainval`, batch
norms folded by tensorflowjs) mapped onto `official_mobilenet_v2.build_official_mobilenet_v2`
(the `voc_v3_mnv2_official` model).

How tensorflowjs stores each official scope (e.g. `MobilenetV2/expanded_conv_7/expand`):
- a convolution followed by a batch norm: kernel `{scope}/Conv2D/merged_input` (HWIO, batch
  norm scale folded in) and bias `{scope}/BatchNorm/FusedBatchNorm/Offset`;
- a depthwise convolution: the official kernel `{scope}/depthwise_weights` [3, 3, C, 1], then a
  per-channel `{scope}/BatchNorm/FusedBatchNorm/Scaled` and `.../Offset`; the Keras kernel is
  `depthwise_weights * Scaled` and the bias `Offset`;
- the classifier: `logits/semantic/weights` and `logits/semantic/biases`.

Besides weights the file holds the preprocessing's three float constants (checked against
`official_mobilenet_v2`'s) and int32 shape constants of the graph (sizes, paddings, axes; not
weights, ignored). Every other float tensor must have a place in the model.
"""

import keras
import numpy as np

from deeplab_tf.pretrained import official_mobilenet_v2 as official
from deeplab_tf.pretrained.official_weights import UnusedTensorError, set_official_weights  # noqa: F401
from deeplab_tf.pretrained.tf1_names import projection_to_keras
from deeplab_tf.pretrained.source_tensors import SourceFileError, SourceTensors

PREPROCESSING_CONSTANTS = {
    "mul_1/x": np.float32(2.0 / 255.0),
    "ToFloat/x": np.float32(1.0),
    "Reshape": np.full((1, 1, 3), official.MEAN_PIXEL, np.float32),
}
"""Float constants of the official graph's preprocessing, x * `mul_1/x` - `ToFloat/x` after padding
with `Reshape` (the mean pixel): what `official_mobilenet_v2.preprocess` computes."""


def load_tfjs_mobilenet_v2(model: keras.Model, tensors: SourceTensors) -> int:
    """Sets every weight of `model` (from `build_official_mobilenet_v2`, depth 1.0) to the
    official TF.js weights `tensors` (`read_tfjs_graph_model(dir).weights`).

    Returns the number of official tensors used. Nothing is set unless every tensor fits:
    raises `MissingTensorError` / `TensorShapeError` (one line, naming tensor, shapes and file)
    for a missing or wrongly shaped tensor, `SourceFileError` for a preprocessing constant of
    another value, `UnusedTensorError` for a float tensor with no place in the model, and
    ValueError if `model` lacks a layer or has a weighted layer the official model has not."""
    return set_official_weights(model, tensors, _layer_weights, other_used=_check_preprocessing(tensors))


def _layer_weights(kernel_shape, bias_shape, scope: str, kind: str, tensors: SourceTensors) -> tuple[list, list]:
    """Returns ([kernel, bias] float32 arrays for the layer, [the official tensor names read])."""
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
    if kind == "projection":
        kernel = projection_to_keras(kernel, kernel.shape[2] // 2)  # [pooling, 1x1] -> ours
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
