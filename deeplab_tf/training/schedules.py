"""Learning-rate schedules: DeepLab v2's "poly" and DeepLab v1's Caffe "step" policy, each with an
optional linear warm-up; `from_train_config` builds the one a `TrainConfig` names."""

import numbers

import keras
import tensorflow as tf

from deeplab_tf.config import SCHEDULES



def _warmup_factor(step, warmup_steps: int):
    """min(1, (step + 1) / warmup_steps): the linear warm-up shared by the schedules."""
    return tf.minimum(1.0, (step + 1.0) / float(warmup_steps))


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
            rate *= _warmup_factor(step, self.warmup_steps)
        return rate

    def describe(self) -> str:
        """Returns a short text for logs, e.g. "poly power 0.9"."""
        return f"poly power {self.power}" + (f", {self.warmup_steps}-step warm-up" if self.warmup_steps else "")

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "power": self.power,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="deeplab_tf")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Caffe's "step" policy, as DeepLab v1 trained: lr = base * gamma ** floor(step / step_size),
    optionally times a linear warm-up min(1, (step + 1) / warmup_steps) over the first steps.

    `step` is the optimizer's iteration count, 0 for the first update (Caffe's `iter`), so with
    step_size 2000 updates 0..1999 use `base`, 2000..3999 `base * gamma`, and so on.

    Args:
        `base_learning_rate`: float. Learning rate at step 0 (without warm-up).
        `step_size`: int. Number of steps between two multiplications by `gamma` (Caffe's
            `stepsize`); >= 1.
        `gamma`: float. Factor applied every `step_size` steps, in (0, 1]. Defaults to 0.1.
        `warmup_steps`: int. Length of the linear warm-up; 0 (default) for none.

    Example:
    ```python
    schedule = StepDecay(1e-3, step_size=2000, gamma=0.1)  # DeepLab v1
    float(schedule(2000))  # 1e-4
    ```
    """

    def __init__(self, base_learning_rate: float, step_size: int, gamma: float = 0.1, warmup_steps: int = 0):
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) or step_size < 1:
            raise ValueError(f"StepDecay step_size must be an integer >= 1, got {step_size!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"StepDecay gamma must be in (0, 1], got {gamma!r}")
        if warmup_steps < 0:
            raise ValueError(f"StepDecay warmup_steps must be >= 0, got {warmup_steps}")
        self.base_learning_rate = base_learning_rate
        self.step_size = int(step_size)
        self.gamma = gamma
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        # Integer division, so the drop happens exactly at multiples of step_size at any step count.
        drops = tf.math.floordiv(tf.cast(step, tf.int64), self.step_size)
        rate = self.base_learning_rate * tf.pow(tf.constant(self.gamma, tf.float32), tf.cast(drops, tf.float32))
        if self.warmup_steps:
            rate *= _warmup_factor(tf.cast(step, tf.float32), self.warmup_steps)
        return rate

    def describe(self) -> str:
        """Returns a short text for logs, e.g. "step: x0.1 every 2000 steps"."""
        return (f"step: x{self.gamma} every {self.step_size} steps"
                + (f", {self.warmup_steps}-step warm-up" if self.warmup_steps else ""))

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "warmup_steps": self.warmup_steps,
        }


def from_train_config(cfg) -> PolyDecay | StepDecay:
    """Returns the schedule a `TrainConfig` names in `learning_rate_schedule` ("poly" uses
    `poly_power` over `steps`; "step" uses `step_size` and `step_gamma`), both with `warmup_steps`.

    Raises ValueError naming the `train.` field when the name is unknown (listing the known ones),
    `warmup_steps` is outside [0, steps), `step_size` < 1 or `step_gamma` outside (0, 1].
    """
    if cfg.learning_rate_schedule not in SCHEDULES:
        raise ValueError(f"train.learning_rate_schedule={cfg.learning_rate_schedule!r}; known: {SCHEDULES}")
    if not 0 <= cfg.warmup_steps < cfg.steps:
        raise ValueError(f"train.warmup_steps={cfg.warmup_steps} must be in [0, train.steps={cfg.steps})")
    if cfg.learning_rate_schedule == "poly":
        return PolyDecay(cfg.base_learning_rate, cfg.steps, cfg.poly_power, cfg.warmup_steps)
    if cfg.step_size < 1:
        raise ValueError(f"train.step_size={cfg.step_size} must be >= 1 (steps between learning-rate drops)")
    if not 0.0 < cfg.step_gamma <= 1.0:
        raise ValueError(f"train.step_gamma={cfg.step_gamma} must be in (0, 1] (the factor applied every step_size)")
    return StepDecay(cfg.base_learning_rate, cfg.step_size, cfg.step_gamma, cfg.warmup_steps)
