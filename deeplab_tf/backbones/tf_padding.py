"""TensorFlow's run-time "SAME" padding for the strided convolutions of a Keras Applications model.

Keras Applications pad before a strided "valid" convolution with a `ZeroPadding2D` computed
when the model is built (`imagenet_utils.correct_pad`): (1, 1) for an odd static size, but
(0, 1) for an even or unknown one. TF1 slim's MobileNetV2 (the official DeepLab backbone) uses
"SAME", which pads each call at its own size: `total = max((ceil(n / s) - 1) * s + k - n, 0)`,
`total // 2` before, the rest after, so (1, 1) for an odd `n` and (0, 1) for an even one with a
3x3 kernel at stride 2. `tf_same_padding` rewrites a model to that convention, so it is exact
at any input size, known or not.
"""

import keras

from deeplab_tf.backbones.output_stride import copy_weights_by_name

PADDINGS = ("keras", "tf_same")
"""`model.backbone_padding` values: "keras" keeps the application's explicit padding layers,
"tf_same" is `tf_same_padding`."""


def _strided_valid_consumer(layer):
    """Returns the single layer `layer` feeds if it is a strided "valid" convolution, else None."""
    consumers = [node.operation for node in layer._outbound_nodes]
    if len(consumers) != 1:
        return None
    consumer = consumers[0]
    strided = getattr(consumer, "strides", (1,))[0] > 1 and getattr(consumer, "padding", "") == "valid"
    return consumer if strided and hasattr(consumer, "kernel_size") else None


def tf_same_padding(model):
    """Returns a clone of `model` (same layer names and weights) in which every `ZeroPadding2D`
    whose only consumer is a strided "valid" `Conv2D` / `DepthwiseConv2D` is dropped and that
    convolution pads "same" (TensorFlow's "SAME", computed at run time); `model` itself if it
    has no such padding layer. `model`: a functional `keras.Model` without nested models.

    Example: Keras MobileNetV2's `Conv1_pad` + `Conv1` ("valid", stride 2) becomes `Conv1`
    ("same", stride 2), as `tf.nn.conv2d(..., strides=2, padding="SAME")`.
    """
    convs = {}
    for layer in model.layers:
        consumer = _strided_valid_consumer(layer) if isinstance(layer, keras.layers.ZeroPadding2D) else None
        if consumer is not None:
            convs[consumer.name] = layer.name
    if not convs:
        return model
    dropped = set(convs.values())

    def clone(layer):
        if layer.name in dropped:
            return lambda inputs: inputs
        config = layer.get_config()
        if layer.name in convs:
            config["padding"] = "same"
        return layer.__class__.from_config(config)

    result = keras.models.clone_model(model, clone_function=clone)
    copy_weights_by_name(model, result)
    return result
