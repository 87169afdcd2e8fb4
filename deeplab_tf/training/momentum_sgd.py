"""SGD with momentum whose update of each variable is one fused TensorFlow kernel.

Keras 3's `keras.optimizers.SGD` updates a variable with momentum `mu` and learning rate `lr` as

    m <- mu * m - lr * g
    w <- w + m

in four or five element-wise ops per variable (two multiplies, a subtraction, an assignment and
an assign-add, plus casts): each reads and writes the whole variable again, and a DeepLab
ResNet-50 has 232 variables, 39 M parameters. `MomentumSGD` computes the same update, in the same
order of operations, with TensorFlow's `ResourceApplyKerasMomentum` kernel (the one the TF 2 Keras
optimizers used): one pass per variable. On the 2-core Intel Xeon (Sapphire Rapids) of
BENCHMARKS.md the bfloat16 training step of that network is 3.5% faster with it ("One fused
kernel per variable for the momentum update").

Sparse gradients (`tf.IndexedSlices`), Nesterov momentum and momentum 0 take Keras' own update.
Variables, their names and the checkpointed state are Keras' SGD's, so checkpoints of either
restore into the other.
"""

import keras
import tensorflow as tf


class MomentumSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose dense momentum update is TensorFlow's fused kernel (module
    docstring). Same arguments, variables and updates, to float rounding.

    Example:
    ```python
    optimizer = MomentumSGD(learning_rate=0.01, momentum=0.9)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    ```
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0 or self.nesterov or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        variable = variable.value if isinstance(variable, keras.Variable) else variable
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=momentum.value.handle, lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype), momentum=tf.cast(self.momentum, dtype),
            use_locking=False, use_nesterov=False)
