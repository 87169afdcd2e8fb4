"""Learning-rate schedules."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab_tf")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """DeepLab's "poly" schedule: lr = base * (1 - step / total_steps) ** power, 0 after the end.

    Args:
        `base_learning_rate`: float. Learning rate at step 0.
        `total_steps`: int. Step at which the rate reaches 0.
        `power`: float. Exponent. Defaults to 0.9.
    """

    def __init__(self, base_learning_rate: float, total_steps: int, power: float = 0.9):
        if total_steps < 1:
            raise ValueError(f"PolyDecay total_steps must be >= 1, got {total_steps}")
        self.base_learning_rate = base_learning_rate
        self.total_steps = total_steps
        self.power = power

    def __call__(self, step):
        progress = tf.minimum(tf.cast(step, tf.float32) / float(self.total_steps), 1.0)
        return self.base_learning_rate * tf.pow(1.0 - progress, self.power)

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "power": self.power,
        }
