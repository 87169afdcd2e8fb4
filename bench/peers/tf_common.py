"""What the TensorFlow workers share: the timed step (inference or SGD training) and an
analytic FLOP count of a traced graph. Works with Keras 3 and tf_keras models alike."""

import contextlib

import numpy as np
import tensorflow as tf

from bench.peers.protocol import make_inputs

FLOP_OPS = ("Conv2D", "DepthwiseConv2dNative", "MatMul")


def _dims(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape.as_list()):
        return None
    return shape.as_list()


def _op_flops(op) -> tuple[float, float]:
    """(FLOPs counting every tap, 2 per multiply-add) of one Conv2D / depthwise / MatMul op;
    (0, 1) when a shape is unknown (the second value counts such ops)."""
    if op.type == "Conv2D":
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        if op.inputs[0].op.type == "SpaceToBatchND":
            # tf.nn.convolution's dilated path: count the outputs kept after BatchToSpaceND
            # (the logical convolution), not the padded blocks.
            for consumer in op.outputs[0].consumers():
                if consumer.type == "BatchToSpaceND":
                    out = _dims(consumer.outputs[0])
        if out is None or kernel is None:
            return 0.0, 1.0
        kh, kw, cin, _ = kernel
        return 2.0 * float(np.prod(out)) * kh * kw * cin, 0.0
    if op.type == "DepthwiseConv2dNative":
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
        if out is None or kernel is None:
            return 0.0, 1.0
        return 2.0 * float(np.prod(out)) * kernel[0] * kernel[1], 0.0
    if op.type == "MatMul":
        a, out = _dims(op.inputs[0]), _dims(op.outputs[0])
        if a is None or out is None:
            return 0.0, 1.0
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2.0 * float(np.prod(out)) * k, 0.0
    return 0.0, 0.0


def graph_flops(graph, _seen=None) -> tuple[float, int]:
    """Forward FLOPs of the convolutions and matmuls in `graph` (nested functions included),
    from the static shapes: 2 * outputs * kernel taps * input channels, taps that fall in the
    padding counted (the usual convention; what a dense convolution of that shape costs).
    Returns (flops, number of such ops whose shape was unknown)."""
    _seen = set() if _seen is None else _seen
    total, unknown = 0.0, 0
    functions = {}
    for name, function in getattr(graph, "_functions", {}).items():
        functions[name] = function
    for op in graph.get_operations():
        flops, missing = _op_flops(op)
        total, unknown = total + flops, unknown + int(missing)
        if op.type in ("StatefulPartitionedCall", "PartitionedCall"):
            name = op.get_attr("f").name
            function = functions.get(name)
            if function is not None and name not in _seen and hasattr(function, "graph"):
                _seen.add(name)
                nested, nested_unknown = graph_flops(function.graph, _seen)
                total, unknown = total + nested, unknown + nested_unknown
    return total, unknown


def set_precision(config: dict, keras_module) -> str:
    """Sets `keras_module`'s (Keras 3 or tf_keras) global dtype policy from config["precision"]:
    "float32" (the default) or "bfloat16" (the policy "mixed_bfloat16": bfloat16 compute, float32
    variables). Call before the model is built. Returns the policy's name."""
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[config.get("precision", "float32")]
    keras_module.mixed_precision.set_global_policy(policy)
    return policy


def forward_gflops(model, config: dict) -> dict:
    """Traces `model` (inference mode) on the benchmark's input shape and counts its forward GFLOPs."""
    fn = tf.function(lambda x: model(x, training=False))
    shape = [config["batch"], config["height"], config["width"], 3]
    concrete = fn.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    flops, unknown = graph_flops(concrete.graph)
    return {"gflop": round(flops / 1e9, 3), "ops_with_unknown_shape": unknown}


def count_parameters(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def resize_to(logits, size):
    """Bilinear resize of logits [B, h, w, C] to `size` (height, width) unless already there."""
    if tuple(logits.shape[1:3]) == tuple(size):
        return logits
    return tf.image.resize(logits, size, method="bilinear")


def cross_entropy(labels, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def make_step(model, config, optimizer=None, loss_fn=cross_entropy, jit_compile=False,
              trace_scope=contextlib.nullcontext):
    """Returns run(): one timed iteration on the benchmark's fixed input.

    Inference: `model(images, training=False)` with logits resized to the input size. Training:
    forward in training mode, logits resized to the crop, `loss_fn(labels, logits)`, gradients,
    one `optimizer` step (SGD with momentum). The result is fetched to the host so that the
    timing covers the whole computation. `trace_scope()` is entered while the step's body is
    traced (deeplab-tf: its speed choices timed under XLA when `jit_compile`)."""
    images, labels = make_inputs(config)
    images, labels = tf.constant(images), tf.constant(labels)
    size = (config["height"], config["width"])
    if config["mode"] == "inference":

        @tf.function(jit_compile=jit_compile)
        def infer(x):
            with trace_scope():
                return resize_to(model(x, training=False), size)

        return lambda: infer(images).numpy()

    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def train(x, y):
        with tf.GradientTape() as tape, trace_scope():
            logits = resize_to(model(x, training=True), size)
            loss = loss_fn(y, tf.cast(logits, tf.float32))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return lambda: float(train(images, labels))


def tf_info() -> dict:
    return {
        "tensorflow": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
