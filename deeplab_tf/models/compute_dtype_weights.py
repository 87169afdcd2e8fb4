"""Stores a mixed-precision model's convolution weights in its compute dtype, for serving.

Under Keras' "mixed_bfloat16" (or "mixed_float16") policy a layer keeps float32 variables and
casts each of them to bfloat16 at every call: a training model needs float32 master weights, an
exported one does not. In a served ResNet-50 DeepLabv3 those casts were 121 `Cast` ops per
request, 5.8% of the op time of a bfloat16 step (BENCHMARKS.md, "Profiles in float32 and
bfloat16"). `store_weights_in_compute_dtype` gives every convolution and dense layer of such a
model the plain policy of its compute dtype ("bfloat16"), holding the very values the cast
produced (`tf.cast` of the float32 variable, the op Keras' autocast runs), so the model computes
bit for bit what it computed before, with half the weight bytes and no per-call casts.

Layers kept as they are: batch norms (Keras and deeplab-tf's fused one compute their statistics
in float32 under a mixed policy, which a bfloat16 policy would change), `SeparableAtrousConv2D`
(it holds a batch norm), layers without weights, and every layer whose policy is not mixed.
"""

import keras
import tensorflow as tf

from deeplab_tf.layers.atrous_conv import AtrousConv2D, AtrousDepthwiseConv2D
from deeplab_tf.models.layer_clones import clone_from_configs

# Layers whose call under a mixed policy only casts their variables to the compute dtype.
WEIGHT_CASTING_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense,
                         AtrousConv2D, AtrousDepthwiseConv2D)


def store_weights_in_compute_dtype(model: keras.Model, log=None) -> keras.Model:
    """Returns `model` with its mixed-precision convolution and dense layers holding their
    weights in their compute dtype (module docstring).

    Args:
        model: `keras.Model`. A functional model (nested functional models allowed), e.g. the
            output of `deeplab_tf.models.fold_batch_norm`. It is not changed.
        log: callable or `None`. Called with one line naming how many layers were changed and
            to which dtype, when any was. Defaults to `None` (silent).

    Returns:
        `model` itself when none of its layers qualifies (e.g. a float32 model); else a new
        functional `keras.Model` with the same inputs, outputs and layer names whose qualifying
        layers have the policy `compute_dtype` (e.g. "bfloat16") and variables of that dtype.
        Its outputs equal `model`'s bit for bit. Like the output of `fold_batch_norm`, it is an
        inference model: never train it.
    """
    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True) if _qualifies(layer)]
    if not layers:
        return model

    def use_compute_dtype(layer, config):
        if _qualifies(layer):
            config["dtype"] = layer.dtype_policy.compute_dtype

    clone, copies = clone_from_configs(model, use_compute_dtype)
    for layer, copy in copies:
        for source, target in zip(layer.weights, copy.weights):
            target.assign(tf.cast(source.value, target.dtype))
    if log is not None:
        dtypes = sorted({layer.dtype_policy.compute_dtype for layer in layers})
        log(f"Stored the weights of {len(layers)} convolution/dense layers in {', '.join(dtypes)}, "
            "their compute dtype (no per-call casts)")
    return clone


def _qualifies(layer) -> bool:
    policy = layer.dtype_policy
    return (isinstance(layer, WEIGHT_CASTING_LAYERS) and policy.compute_dtype != policy.variable_dtype
            and bool(layer.weights))
