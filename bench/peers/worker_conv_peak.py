"""Peers benchmark worker: the machine's dense-convolution peak, measured as the training cost of
one 3x3 "same" convolution (forward + input and kernel gradients) on config["peak_shape"]
(NxHxWxCin->Cout, default 8x65x65x256->256), TensorFlow, in config["precision"] (float32, the
default, or bfloat16: bfloat16 activations and a float32 kernel cast to bfloat16, as Keras'
mixed_bfloat16 policy runs a layer). One iteration = one such step."""

from bench.peers.protocol import serve


def parse_shape(text):
    """'8x65x65x256->256' -> (8, 65, 65, 256, 256)."""
    left, cout = text.split("->")
    n, h, w, cin = (int(v) for v in left.lower().split("x"))
    return n, h, w, cin, int(cout)


def build(config):
    import numpy as np
    import tensorflow as tf

    from bench.peers import tf_common

    dtype = {"float32": tf.float32, "bfloat16": tf.bfloat16}[config.get("precision", "float32")]
    n, h, w, cin, cout = parse_shape(config.get("peak_shape") or "8x65x65x256->256")
    rng = np.random.default_rng(config["seed"])
    x = tf.constant(rng.standard_normal((n, h, w, cin)).astype(np.float32), dtype=dtype)
    kernel = tf.Variable(rng.standard_normal((3, 3, cin, cout)).astype(np.float32) * 0.05)
    upstream = tf.constant(rng.standard_normal((n, h, w, cout)).astype(np.float32), dtype=dtype)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, tf.cast(kernel, dtype), 1, "SAME")
            loss = tf.reduce_sum(tf.cast(y * upstream, tf.float32))
        dx, dk = tape.gradient(loss, [x, kernel])
        return tf.reduce_sum(tf.cast(dx, tf.float32)) + tf.reduce_sum(dk)

    forward = 2.0 * n * h * w * cout * 9 * cin
    info = dict(tf_common.tf_info(), version=f"tensorflow {tf.__version__}",
                model=f"3x3 conv {n}x{h}x{w}x{cin}->{cout}, forward + both gradients, {dtype.name}",
                step_gflop=round(3 * forward / 1e9, 3))
    return (lambda: float(step())), info


if __name__ == "__main__":
    serve(build)
