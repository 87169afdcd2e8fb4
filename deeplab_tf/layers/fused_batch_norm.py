"""Batch normalization through TensorFlow's fused kernel, with Keras' weights and semantics.

Keras 3's TensorFlow backend computes batch normalization from `tf.nn.moments` and
`tf.nn.batch_normalization`: in training about ten elementwise ops and reductions per layer
forward, more backward, each a pass over the feature map; at inference a multiply and an add
that grappler cannot fuse into the convolution before them. `FusedBatchNormalization` runs the
same computation as one `FusedBatchNormV3` op (forward) and one `FusedBatchNormGradV3` (backward);
at inference grappler's remapper then fuses convolution + batch norm (+ ReLU) into one kernel.

Same outputs, gradients and moving-statistics updates as `keras.layers.BatchNormalization` (to
float32 rounding): the batch variance normalising the batch is the biased one in both, and the
fused kernel's unbiased `batch_variance` output is scaled back by `(n - 1) / n` before the moving
average, as Keras averages the biased variance. Layers it cannot run (masks, renorm,
synchronized statistics, an axis other than the last of a 4-D input, float64, which the fused
kernel would round to float32) fall back to Keras' code. Under a mixed policy (float16 or
bfloat16 maps) the map enters the kernel in its own type and is normalised with float32
statistics, where Keras casts it to float32 and back.

In a training step (`training=True`, a gradient tape recording, static shapes) with tuning on
(`deeplab_tf.layers.autotune`), each layer runs whichever of the fused kernel and Keras' ops took
less time for its input shape and dtype on this machine, forward + gradients timed once on a copy
of the layer (key "batch_norm train <dtype> input=<shape>", picks "fused" or "keras"). This
holds under a distribution strategy too (the trainer always runs under one), with the shape one
replica sees: the copy is made and timed in `autotune.eagerly`'s thread, where no strategy's
scope is entered, so its variables are plain ones and creating them runs no collective. At
inference the fused kernel always runs: grappler folds it into the convolution before it, which
a batch norm timed alone would not show.
"""

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # could_possibly_record: not public in 2.21

from deeplab_tf.layers import autotune
from deeplab_tf.layers.layer_classes import switch_layer_class


@keras.saving.register_keras_serializable(package="deeplab_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused batch norm kernel.

    Same arguments, weights (names, order, shapes) and results as
    `keras.layers.BatchNormalization`; `use_fused_batch_norm(model)` switches the layers of a
    built model in place.

    Example:
    ```python
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
    outputs = layer(np.ones((2, 9, 9, 16), "float32"), training=True)
    ```
    """

    def _fusable(self, inputs, mask):
        rank = len(inputs.shape)
        return (mask is None and not self.renorm and not self.synchronized and rank == 4
                and self.axis in (-1, 3) and inputs.dtype != tf.float64)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask) or not self._fused_is_faster(inputs, training):
            return super().call(inputs, training=training, mask=mask)
        return self._fused(inputs, training)

    def _fused_is_faster(self, inputs, training):
        """Whether the fused kernel runs this call: False only where tuning (module docstring)
        found Keras' ops faster for a training step of this shape and dtype."""
        if not (training and self.trainable and record.could_possibly_record()
                and inputs.shape.is_fully_defined() and autotune.enabled()):
            return True
        key = autotune.key("batch_norm", True, inputs.dtype.name, input=inputs.shape)
        return autotune.pick(key, ("fused", "keras"), lambda: self._timed_runs(inputs)) == "fused"

    def _timed_runs(self, inputs):
        """{"fused": run, "keras": run}: a training step's forward + gradients of a copy of this
        layer on a random map of `inputs`' shape and dtype (the copy's statistics take the updates)."""
        copy = FusedBatchNormalization.from_config(self.get_config())
        copy.build(tuple(inputs.shape))
        maps = autotune.random_tensors([inputs.shape], inputs.dtype.name)
        return {"fused": autotune.timed_step(lambda x: copy._fused(x, True), maps, True),
                "keras": autotune.timed_step(
                    lambda x: keras.layers.BatchNormalization.call(copy, x, training=True), maps, True)}

    def _fused(self, inputs, training):
        """The batch norm of `inputs` by `FusedBatchNormV3`, moving statistics updated when
        `training` (and trainable); returns the normalised map in the compute dtype."""
        # float16 / bfloat16 maps go to the kernel as they are: it normalises them with float32
        # statistics, scale and offset, as Keras does after casting them to float32, without the
        # casts of the whole map forward and backward.
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, "float32")
        channels = x.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels], "float32")
        if training and self.trainable:
            outputs, mean, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.constant([], "float32"),
                variance=tf.constant([], "float32"), epsilon=self.epsilon, data_format="NHWC",
                is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
            variance = unbiased * ((count - 1.0) / tf.maximum(count, 1.0))
            moving_mean = tf.cast(self.moving_mean, "float32")
            moving_variance = tf.cast(self.moving_variance, "float32")
            self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon,
                data_format="NHWC", is_training=False)[0]
        return tf.cast(outputs, self.compute_dtype)


def use_fused_batch_norm(model: keras.Model) -> int:
    """Makes every `keras.layers.BatchNormalization` of `model` (nested models and layers
    included) a `FusedBatchNormalization`, in place: same state and weights, only `call` changes.
    Subclasses (e.g. `deeplab_tf.training.distribute.SynchronizedBatchNormalization`) are left alone.
    Returns how many layers were switched."""
    return switch_layer_class(model, keras.layers.BatchNormalization, FusedBatchNormalization)
