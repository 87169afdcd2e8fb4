"""Learning-rate schedules."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="deeplab_tf")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """DeepLab's "poly" schedule: lr = base * (1 - step / total_steps) ** power, 0 after the end,
    optionally times a linear warm-up min(1, (step + 1) / warmup_steps) over the first steps.

    Args:
        `base_learning_rate`: float. Learning rate at step 0 (without warm-up).
        `total_steps`: int. Step at which the rate reaches 0.
        `power`: float. Exponent. Defaults to 0.9.
        `warmup_steps`: int. Length of the linear warm-up; 0 (default) for none.
    """

    def __init__(self, base_learning_rate: float, total_steps: int, power: float = 0.9, warmup_steps: int = 0):
        if total_steps < 1:
            raise ValueError(f"PolyDecay total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"PolyDecay warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}")
        self.base_learning_rate = base_learning_rate
        self.total_steps = total_steps
        self.power = power
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        progress = tf.minimum(step / float(self.total_steps), 1.0)
        rate = self.base_learning_rate * tf.pow(1.0 - progress, self.power)
        if self.warmup_steps:
            rate *= tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return rate

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "power": self.power,
            "warmup_steps": self.warmup_steps,
        }
