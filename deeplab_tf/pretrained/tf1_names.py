"""Official TF1 variable names (tensorflow/models `research/deeplab`, batch norms not folded) of
the weights of deeplab-tf's DeepLabv3 / v3+ models with a MobileNetV2 or Xception-65 backbone.

slim names a convolution's variables `<scope>/weights` (a depthwise one `<scope>/depthwise_weights`),
its batch norm's `<scope>/BatchNorm/{gamma,beta,moving_mean,moving_variance}`, and the biases
of the classifier (no batch norm) `<scope>/biases`. A split separable convolution (Xception-65,
ASPP and decoder of DeepLabv3+) has the two scopes `<scope>_depthwise` and `<scope>_pointwise`,
each with its batch norm: in deeplab-tf, the `SeparableAtrousConv2D` (depthwise kernel, inner
batch norm, pointwise kernel) and the batch norm after it.

Scopes (pointers into tensorflow/models):
- MobileNetV2: `mobilenet_v2_names` (`research/slim/nets/mobilenet/mobilenet_v2.py`);
- Xception-65: `xception_65/{entry_flow,middle_flow,exit_flow}/block<b>/unit_<u>/xception_module/`
  `separable_conv<i>` and `shortcut`, root `xception_65/entry_flow/conv1_{1,2}`
  (`research/deeplab/core/xception.py`: `xception_module`, `separable_conv2d_same`, `xception`);
- head (`research/deeplab/model.py`: `_extract_features`, `refine_by_decoder`,
  `_get_branch_logits`, `_split_separable_conv2d`): ASPP `aspp0` (1x1), `aspp<i>` (atrous branch
  i), `image_pooling`, `concat_projection`; decoder `decoder/feature_projection0`,
  `decoder/decoder_conv0`, `decoder/decoder_conv1`; classifier `logits/semantic`.
The official ASPP concatenates [image_pooling, aspp0, aspp1, ...], `deeplab_tf.layers.ASPP`
[1x1, atrous 1, ..., image pooling]: `projection_to_keras` reorders the projection's input channels.
"""

import keras
import numpy as np

from deeplab_tf.backbones import xception65
from deeplab_tf.layers.atrous_conv import AtrousDepthwiseConv2D
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D
from deeplab_tf.pretrained import mobilenet_v2_names
from deeplab_tf.pretrained.initialize import weighted_layers

XCEPTION_SCOPE = "xception_65"
CLASSIFIER_SCOPE = "logits/semantic"
PROJECTION_KERNEL = "concat_projection/weights"
IMAGE_POOLING_KERNEL = "image_pooling/weights"
BATCH_NORM_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
_DEPTHWISE = (keras.layers.DepthwiseConv2D, AtrousDepthwiseConv2D)
_SUFFIXES = {  # kind of Keras layer -> {Keras variable name within the layer: suffix of the scope}
    "conv": {"kernel": "/weights", "bias": "/biases"},
    "depthwise": {"kernel": "/depthwise_weights"},
    "batch_norm": {v: f"/BatchNorm/{v}" for v in BATCH_NORM_VARIABLES},
    "separable": {"depthwise_kernel": "_depthwise/depthwise_weights", "pointwise_kernel": "_pointwise/weights",
                  **{f"batch_norm/{v}": f"_depthwise/BatchNorm/{v}" for v in BATCH_NORM_VARIABLES}},
}


def official_variable_names(model: keras.Model) -> dict[str, str]:
    """Returns {Keras variable path (e.g. "block_3_expand_BN/gamma"): official TF1 variable
    name (e.g. "MobilenetV2/expanded_conv_3/expand/BatchNorm/gamma")} for every weight of
    `model` (a DeepLabv3 / v3+ of `deeplab_tf.models.build_model`, nested models searched).

    Raises ValueError if the backbone is neither MobileNetV2 nor Xception-65, or naming the
    weights that have no official counterpart (e.g. a layer the official model lacks)."""
    layers = weighted_layers(model)
    names = {}
    for layer_name, scope in layer_scopes(layers).items():
        if layer_name not in layers:
            continue  # e.g. the v3+ decoder of a v3 model; the official tensors then have no place
        suffixes = _SUFFIXES[_kind(layers[layer_name])]
        for variable in layers[layer_name].weights:
            suffix = suffixes.get(variable.path[len(layer_name) + 1:])
            if suffix is not None:
                names[variable.path] = scope + suffix
    unmatched = sorted({variable.path for variable in model.weights} - set(names))
    if unmatched:
        raise ValueError(f"{len(unmatched)} weights of model {model.name!r} have no official TF1 variable: "
                         f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}")
    return names


def layer_scopes(layers: dict) -> dict[str, str]:
    """Returns {Keras layer name: official scope} for the convolutions and batch norms of the
    backbone among `layers` ({name: layer}; "Conv1": MobileNetV2, "entry_flow_conv1_1":
    Xception-65) and of its DeepLab head. The batch norm after a split separable convolution of
    scope S gets the scope `S_pointwise`. Raises ValueError for another backbone."""
    if "Conv1" in layers:
        units = [(scope, layer, mobilenet_v2_names.batch_norm_layer(layer))
                 for scope, layer, _ in mobilenet_v2_names.backbone_layers()]
    elif "entry_flow_conv1_1" in layers:
        units = _xception_units()
    else:
        raise ValueError("the model has no MobileNetV2 ('Conv1') or Xception-65 ('entry_flow_conv1_1') "
                         "backbone layer: only those have official TF1 names")
    scopes = {}
    for scope, conv, batch_norm in units + _head_units(layers):
        scopes[conv] = scope
        if batch_norm is not None:
            separable = isinstance(layers.get(conv), SeparableAtrousConv2D)
            scopes[batch_norm] = f"{scope}_pointwise" if separable else scope
    return scopes


def projection_to_keras(kernel: np.ndarray, branch_channels: int) -> np.ndarray:
    """Returns the official `concat_projection/weights` [1, 1, (n + 1) * F, F'] with its input
    channels in `deeplab_tf.layers.ASPP`'s order: official [image_pooling, aspp0, ..., aspp<n-1>]
    (blocks of `branch_channels` F) -> ours [aspp0, ..., image pooling]."""
    return np.roll(kernel, -branch_channels, axis=2)


def _kind(layer) -> str:
    """Returns the key of `_SUFFIXES` for a weighted Keras layer."""
    if isinstance(layer, SeparableAtrousConv2D):
        return "separable"
    if isinstance(layer, keras.layers.BatchNormalization):
        return "batch_norm"
    return "depthwise" if isinstance(layer, _DEPTHWISE) else "conv"


def _xception_units() -> list[tuple[str, str, str]]:
    """Returns [(official scope, Keras conv layer, Keras batch norm layer)] of Xception-65,
    from the backbone's own `xception65.BLOCKS`."""
    units = [(f"{XCEPTION_SCOPE}/entry_flow/conv1_{i}", f"entry_flow_conv1_{i}", f"entry_flow_conv1_{i}_bn")
             for i in (1, 2)]
    for block, channels, shortcut, count, _, _ in xception65.BLOCKS:
        flow, _, number = block.rpartition("_block")
        for unit in range(1, count + 1):
            scope, name = f"{XCEPTION_SCOPE}/{flow}/block{number}/unit_{unit}/xception_module", f"{block}_unit{unit}"
            units += [(f"{scope}/separable_conv{i}", f"{name}_sepconv{i}", f"{name}_sepconv{i}_pointwise_bn")
                      for i in range(1, len(channels) + 1)]
            if shortcut == "conv":
                units.append((f"{scope}/shortcut", f"{name}_shortcut", f"{name}_shortcut_bn"))
    return units


def _head_units(layer_names) -> list[tuple[str, str, str | None]]:
    """Returns [(official scope, Keras conv layer, Keras batch norm layer or None)] of the ASPP
    (with as many atrous branches as `layer_names` holds), the v3+ decoder and the classifier."""
    atrous = sum(1 for name in layer_names if name.startswith("aspp_atrous") and name.endswith("_conv"))
    return ([("aspp0", "aspp_1x1_conv", "aspp_1x1_bn")]
            + [(f"aspp{i}", f"aspp_atrous{i}_conv", f"aspp_atrous{i}_bn") for i in range(1, atrous + 1)]
            + [("image_pooling", "aspp_pool_conv", "aspp_pool_bn"),
               ("concat_projection", "aspp_project_conv", "aspp_project_bn"),
               ("decoder/feature_projection0", "decoder_low_level_conv", "decoder_low_level_bn"),
               ("decoder/decoder_conv0", "decoder_conv1_conv", "decoder_conv1_bn"),
               ("decoder/decoder_conv1", "decoder_conv2_conv", "decoder_conv2_bn"),
               (CLASSIFIER_SCOPE, mobilenet_v2_names.CLASSIFIER_LAYER, None)])
