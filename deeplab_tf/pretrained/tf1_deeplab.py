"""Official DeepLab weights from TF1 checkpoints and frozen graphs, into deeplab-tf's models.

Sources: a zoo tarball's `model.ckpt-N` (`tf1_checkpoint.read_tf1_checkpoint`) or its
`frozen_inference_graph.pb` (`frozen_graph.read_frozen_graph`, then
`frozen_graph.frozen_variables`: freezing turns each variable into a Const of its name), both
`SourceTensors` keyed by the official variable names, batch norms not folded. Targets: the
models `deeplab_tf.models.build_model` builds for
- DeepLabv3 MobileNetV2: `ModelConfig(arch="deeplab_v3", backbone="mobilenet_v2",
  backbone_alpha=1.0, output_stride=8 or 16, atrous_rates=(), aspp_filters=256)`;
- DeepLabv3+ Xception-65: `ModelConfig(arch="deeplab_v3_plus", backbone="xception65",
  separable=True, output_stride=16, atrous_rates=(6, 12, 18), aspp_filters=256,
  low_level_filters=48, decoder_filters=256)` (the `voc_v3plus_xception65_official` and `cityscapes_v3plus_xception65_official` experiments).
Names: `tf1_names`. Every layout is the same in both (HWIO kernels, depthwise [k, k, C, 1]);
only the ASPP projection's input channels are reordered (`tf1_names.projection_to_keras`).

MobileNetV2 at depth 0.5: DeepLab's widths (`make_divisible(c * 0.5, 1)`, e.g. 12 channels out
of `expanded_conv_1`) are not Keras Applications' `alpha=0.5` widths (16): loading fails with
the shape error of the first such tensor.

What is tested, and on what: no official TF1 checkpoint or frozen graph is available here, so
`tests/pretrained/test_tf1_deeplab.py` writes both itself (`tf.compat.v1.train.Saver`,
`convert_variables_to_constants`) under the official variable names, with random values of our
models' shapes. The names come from reading tensorflow/models: `research/deeplab/model.py`
(ASPP, decoder, logits scopes), `research/deeplab/core/xception.py` (Xception-65 scopes),
`research/deeplab/core/feature_extractor.py` (the decoder's low-level end point
`entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise`),
`research/slim/nets/mobilenet/mobilenet_v2.py` (MobileNetV2 scopes, also seen in the official
TF.js graph). The Xception-65 and decoder path in particular has only met such self-written
checkpoints.
"""

import keras
import numpy as np

from deeplab_tf.pretrained import tf1_names
from deeplab_tf.pretrained.official_weights import UnusedTensorError
from deeplab_tf.pretrained.source_tensors import SourceTensors


def load_tf1_weights(model: keras.Model, tensors: SourceTensors, skip_classifier: bool = False) -> int:
    """Sets every weight of `model` (a DeepLabv3 MobileNetV2 or DeepLabv3+ Xception-65 of
    `build_model`, see the module docstring) to the official TF1 variables `tensors`.

    With `skip_classifier`, the classifier `logits` keeps its weights and the `logits/semantic/*`
    tensors are ignored (transfer to another number of classes).

    Returns the number of official tensors loaded. Nothing is set unless every weight fits:
    raises `MissingTensorError` / `TensorShapeError` (one line naming tensor, shapes and file)
    for a tensor missing or of another shape, `UnusedTensorError` for tensors of `tensors` with
    no place in the model, and ValueError (`tf1_names.official_variable_names`) for a model
    weight with no official name."""
    variables = {variable.path: variable for variable in model.weights}
    paths = {name: path for path, name in tf1_names.official_variable_names(model).items()}
    skipped = f"{tf1_names.CLASSIFIER_SCOPE}/" if skip_classifier else None
    values = {name: tensors.tensor(name, tuple(variables[path].shape)) for name, path in paths.items()
              if skipped is None or not name.startswith(skipped)}
    pooling = paths.get(tf1_names.IMAGE_POOLING_KERNEL)
    if pooling is not None and tf1_names.PROJECTION_KERNEL in values:  # without pooling the orders agree
        values[tf1_names.PROJECTION_KERNEL] = tf1_names.projection_to_keras(
            values[tf1_names.PROJECTION_KERNEL], variables[pooling].shape[-1])
    unused = sorted(name for name in tensors if name not in values and not (skipped and name.startswith(skipped)))
    if unused:
        raise UnusedTensorError(f"{len(unused)} tensors of {tensors.path} have no place in model {model.name!r}: "
                                f"{', '.join(repr(name) for name in unused[:5])}{' ...' if len(unused) > 5 else ''}")
    for name, value in values.items():
        variables[paths[name]].assign(np.asarray(value, dtype=variables[paths[name]].dtype))
    return len(values)
