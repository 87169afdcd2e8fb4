"""The choices that change only speed, never values: applied once to a built model.

Builders create atrous layers with their default implementation and Keras batch norms; the
experiment's `model.atrous_implementation` and `model.fused_batch_norm` are set by
`apply_speed_choices` after the model is built (`deeplab_tf.models.build_model`), so no
builder passes them along; it also makes Keras' depthwise convolutions `TunedDepthwiseConv2D`s
(bfloat16 and float16 calls computed in the compute dtype or in float32) and Keras' convolutions
`TunedConv2D`s (the kernel gradient of a 1x1 one from oneDNN or one GEMM). With `"auto"`,
with the fused batch norm and in the tuned convolutions, each layer then picks, when it is
traced, what ran fastest for its shape on this machine (timed once and cached:
`deeplab_tf.layers.autotune`), or follows a fixed rule where tuning is off.
"""

import keras

from deeplab_tf.layers.atrous_conv import ATROUS_IMPLEMENTATIONS, AtrousConv2D, AtrousDepthwiseConv2D
from deeplab_tf.layers.fused_batch_norm import FusedBatchNormalization, use_fused_batch_norm
from deeplab_tf.layers.layer_classes import switch_layer_class
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D
from deeplab_tf.layers.tuned_conv import TunedConv2D
from deeplab_tf.layers.tuned_depthwise_conv import TunedDepthwiseConv2D

ATROUS_LAYERS = (AtrousConv2D, AtrousDepthwiseConv2D, SeparableAtrousConv2D)


def apply_speed_choices(model: keras.Model, atrous_implementation: str, fused_batch_norm: bool) -> int:
    """Sets `atrous_implementation` (one of `ATROUS_IMPLEMENTATIONS`) on every atrous layer of
    `model`, nested models and layers included, makes its Keras depthwise and full convolutions
    tuned ones (`TunedDepthwiseConv2D`, `TunedConv2D`), and with `fused_batch_norm` computes every
    Keras batch norm with TensorFlow's fused kernel (`use_fused_batch_norm`).

    Returns the number of atrous layers set. Raises ValueError for an unknown implementation.
    """
    if atrous_implementation not in ATROUS_IMPLEMENTATIONS:
        raise ValueError(f"model.atrous_implementation={atrous_implementation!r}; allowed: "
                         f"{', '.join(ATROUS_IMPLEMENTATIONS)}")
    atrous = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(layer, ATROUS_LAYERS)]
    for layer in atrous:
        layer.implementation = atrous_implementation
    switch_layer_class(model, keras.layers.DepthwiseConv2D, TunedDepthwiseConv2D)
    switch_layer_class(model, keras.layers.Conv2D, TunedConv2D)
    if fused_batch_norm:
        use_fused_batch_norm(model)
    return len(atrous)


def speed_choices_of(model: keras.Model) -> dict:
    """Returns {"atrous_implementation": str or None, "fused_batch_norm": bool}: what is set on
    `model`'s layers (None when it has no atrous layer), for `apply_speed_choices`."""
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    implementations = [layer.implementation for layer in layers if isinstance(layer, ATROUS_LAYERS)]
    return {
        "atrous_implementation": implementations[0] if implementations else None,
        "fused_batch_norm": any(isinstance(layer, FusedBatchNormalization) for layer in layers),
    }


@keras.saving.register_keras_serializable(package="deeplab_tf")
class ConfiguredSubModel(keras.Model):
    """Base of the functional sub-models built from typed arguments (`ASPP`,
    `DeepLabV3PlusDecoder`), as keras-hub's backbones are: `get_config` returns the constructor
    arguments stored by `_store_config` plus the speed choices set on the layers, and
    `from_config` rebuilds from them and sets those choices again."""

    def _store_config(self, **arguments) -> None:
        self._arguments = {key: list(value) if isinstance(value, tuple) else value
                           for key, value in arguments.items()}

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._arguments,
                "speed_choices": speed_choices_of(self)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        choices = config.pop("speed_choices", None) or {}
        model = cls(**config)
        apply_speed_choices(model, choices.get("atrous_implementation") or "auto",
                            bool(choices.get("fused_batch_norm")))
        return model
