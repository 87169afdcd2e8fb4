"""Segmentation losses."""

import tensorflow as tf

from deeplab_tf.data.dataset_info import IGNORE_LABEL


def masked_sparse_cross_entropy(labels, logits, ignore_label: int = IGNORE_LABEL, class_weights=None):
    """Returns the mean softmax cross-entropy over pixels whose label is not `ignore_label`.

    labels: int [B, H, W]; logits: float [B, H, W, C] (computed in float32); `class_weights`:
    None or float [C], each pixel's term multiplied by its class's weight (the mean still divides
    by the number of labelled pixels, as Caffe's weighted loss of SegNet does). Returns a float32
    scalar; 0 when every pixel is ignored.
    """
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, ignore_label)
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(valid, labels, 0), logits=tf.cast(logits, tf.float32)
    )
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
