"""The official TFLite DeepLabv3 MobileNetV2 (`deeplabv3_257_mv_gpu.tflite`: depth 0.5, output
stride 8, 21 VOC classes, batch norms folded by TOCO) mapped onto
`official_mobilenet_v2.build_official_mobilenet_v2(official_model_config(0.5, 8))` (the
`voc_v3_mnv2_dm05_official` model).

How the file stores each official scope (`read_tflite_model(path).weights`):
- a convolution: kernel `{scope}/weights` OHWI `[out, kh, kw, in]` (batch norm folded in) and
  bias `{scope}/Conv2D_bias`;
- a depthwise convolution: kernel `{scope}/depthwise_weights` `[1, kh, kw, C]` and bias
  `{scope}/depthwise_bias`;
- the classifier: `logits/semantic/weights` (OHWI) and `logits/semantic/Conv2D_bias`.
Both kernels become Keras' `[kh, kw, in, out]` / `[kh, kw, C, 1]` by moving the first axis last.
The file's other tensors are three int32 resize sizes (not weights, ignored); every float tensor
must have a place in the model. It has no preprocessing: the caller resizes images to 257x257
and feeds x / 127.5 - 1.
"""

import keras
import numpy as np

from deeplab_tf.pretrained.official_weights import set_official_weights
from deeplab_tf.pretrained.tf1_names import projection_to_keras
from deeplab_tf.pretrained.source_tensors import SourceTensors

INPUT_SIZE = 257
"""Side of the square input of the published file."""


def load_tflite_mobilenet_v2(model: keras.Model, tensors: SourceTensors) -> int:
    """Sets every weight of `model` (from `build_official_mobilenet_v2` at depth 0.5) to the
    official TFLite weights `tensors` (`read_tflite_model(path).weights`).

    Returns the number of tensors used. Nothing is set unless every tensor fits: raises
    `MissingTensorError` / `TensorShapeError` (one line, naming tensor, shapes and file),
    `UnusedTensorError` for a float tensor with no place in the model, and ValueError if `model`
    lacks a layer or has a weighted layer the official model has not."""
    return set_official_weights(model, tensors, _layer_weights)


def _layer_weights(kernel_shape, bias_shape, scope: str, kind: str, tensors: SourceTensors) -> tuple[list, list]:
    """Returns ([kernel, bias] float32 arrays in Keras layout, [the tensor names read])."""
    if kind == "depthwise":
        names = [f"{scope}/depthwise_weights", f"{scope}/depthwise_bias"]
    else:
        names = [f"{scope}/weights", f"{scope}/Conv2D_bias"]
    stored_shape = (kernel_shape[3],) + tuple(kernel_shape[:3])  # out (or 1) first
    kernel = np.transpose(tensors.tensor(names[0], stored_shape), (1, 2, 3, 0))
    if kind == "projection":
        kernel = projection_to_keras(kernel, kernel.shape[2] // 2)  # [pooling, 1x1] -> ours
    return [np.array(kernel), np.array(tensors.tensor(names[1], bias_shape))], names
