"""Segmentation losses: the masked softmax cross-entropy (its per-pixel form a tuned speed
choice) and the L2 weight decay."""

import tensorflow as tf
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21

from deeplab_tf.data.dataset_info import IGNORE_LABEL
from deeplab_tf.layers import autotune


def _one_hot_form(labels, logits):
    """`log(sum(exp(z))) - sum(z * one_hot(label))` with `z = logits - max(logits)` (the max held
    constant for the gradient, which is unchanged by it): float32 [B, H, W]."""
    shifted = logits - tf.stop_gradient(tf.reduce_max(logits, axis=-1, keepdims=True))
    log_sum = tf.math.log(tf.reduce_sum(tf.exp(shifted), axis=-1))
    one_hot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=shifted.dtype)
    return log_sum - tf.reduce_sum(shifted * one_hot, axis=-1)


def _fused_form(labels, logits):
    """TensorFlow's fused op, `tf.nn.sparse_softmax_cross_entropy_with_logits`: float32 [B, H, W]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


# The exact forms of the per-pixel cross-entropy, a speed choice (`_form`); the first is the
# fixed rule and wins ties.
CROSS_ENTROPY_FORMS = {"one_hot": _one_hot_form, "fused": _fused_form}


def _form(logits) -> str:
    """The name of the form in `CROSS_ENTROPY_FORMS` that computes the loss of `logits`: with
    tuning on (`deeplab_tf.layers.autotune`) and a static shape, the faster on this machine for
    that shape (key "cross_entropy <train|infer> float32 logits=<shape>", forward + gradient
    timed where a gradient tape records); "one_hot" otherwise."""
    if not (logits.shape.is_fully_defined() and autotune.enabled()):
        return next(iter(CROSS_ENTROPY_FORMS))
    training = record.could_possibly_record()
    key = autotune.key("cross_entropy", training, logits.dtype.name, logits=logits.shape)

    def timed_runs():
        [random_logits] = autotune.random_tensors([logits.shape], logits.dtype.name)
        labels = tf.random.stateless_uniform(logits.shape[:-1], seed=[1, 0], maxval=logits.shape[-1], dtype=tf.int32)
        return {name: autotune.timed_step(lambda z, form=form: form(labels, z), [random_logits], training)
                for name, form in CROSS_ENTROPY_FORMS.items()}

    return autotune.pick(key, tuple(CROSS_ENTROPY_FORMS), timed_runs)


def softmax_cross_entropy(labels, logits):
    """Returns `-log softmax(logits)[label]` per pixel: float32 [B, H, W], for int labels
    [B, H, W] in [0, C) and float32 logits [B, H, W, C].

    Computed by one of `CROSS_ENTROPY_FORMS`, equal to float32 rounding: the one-hot form
    (`_one_hot_form`) or TensorFlow's fused op. Which one is a speed choice, tuned per logits
    shape on the machine in use (`_form`): on the 2-core AMD EPYC of BENCHMARKS.md the one-hot
    form's forward pass + gradient was 1.18x-1.50x faster ("The loss: one-hot form"). A label
    outside [0, C) fails with an InvalidArgumentError naming the range (either form sees only
    in-range labels, so the message is always this one). XLA drops assertions, so there such
    pixels' losses are NaN instead, as the fused op's are under XLA (the trainer stops on a
    non-finite loss).
    """
    classes = tf.shape(logits)[-1]
    labels = tf.cast(labels, tf.int32)
    in_range = (labels >= 0) & (labels < classes)
    tf.debugging.Assert(  # runs in eager mode and in a tf.function alike (a stateful op)
        tf.reduce_all(in_range),
        ["cross-entropy: a label outside [0, number of classes) that is not the ignore label; "
         "number of classes:", classes, "labels from", tf.reduce_min(labels), "to", tf.reduce_max(labels)],
    )
    per_pixel = CROSS_ENTROPY_FORMS[_form(logits)](tf.where(in_range, labels, 0), logits)
    return tf.where(in_range, per_pixel, float("nan"))


def masked_sparse_cross_entropy(labels, logits, ignore_label: int = IGNORE_LABEL, class_weights=None):
    """Returns the mean softmax cross-entropy over pixels whose label is not `ignore_label`.

    labels: int [B, H, W]; logits: float [B, H, W, C] (computed in float32); `class_weights`:
    None or float [C], each pixel's term multiplied by its class's weight (the mean still divides
    by the number of labelled pixels, as Caffe's weighted loss of SegNet does). Returns a float32
    scalar; 0 when every pixel is ignored. A label that is neither `ignore_label` nor in [0, C)
    fails with an InvalidArgumentError (`softmax_cross_entropy`).
    """
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, ignore_label)
    per_pixel = softmax_cross_entropy(tf.where(valid, labels, 0), tf.cast(logits, tf.float32))
    weights = tf.cast(valid, tf.float32)
    count = tf.maximum(tf.reduce_sum(weights), 1.0)
    if class_weights is not None:
        weights *= tf.gather(tf.constant(class_weights, tf.float32), tf.where(valid, labels, 0))
    return tf.reduce_sum(per_pixel * weights) / count


def l2_weight_decay(model, weight_decay: float):
    """Returns weight_decay * sum(w**2) / 2 over the convolution kernels of `model` (float32 scalar),
    the L2 regulariser of the DeepLab recipes (biases and batch-norm parameters excluded)."""
    kernels = [w for w in model.trainable_weights if w.path.endswith("kernel")]
    if not kernels or weight_decay == 0:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.cast(tf.nn.l2_loss(w), tf.float32) for w in kernels])
