"""Learning-rate schedules against closed-form formulas and hand-computed values; config errors;
serialisation; the trainer's optimizer on the step schedule."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.training import trainer
from deeplab_tf.config import TrainConfig, apply_overrides
from deeplab_tf.training.schedules import SCHEDULES, PolyDecay, StepDecay, from_train_config
from tests.training.test_trainer import tiny_demo


def caffe_step(base, step_size, gamma, step):
    """Caffe's "step" policy (SGDSolver::GetLearningRate): base * gamma ^ floor(iter / stepsize)."""
    return base * gamma ** np.floor_divide(step, step_size)


# === StepDecay ===
def test_step_decay_at_hand_computed_steps():
    """DeepLab v1: 1e-3, x0.1 every 2000 iterations, 6000 iterations."""
    schedule = StepDecay(1e-3, step_size=2000, gamma=0.1)
    expected = {0: 1e-3, 1: 1e-3, 1999: 1e-3, 2000: 1e-4, 2001: 1e-4, 3999: 1e-4, 4000: 1e-5, 5999: 1e-5,
                6000: 1e-6}
    for step, rate in expected.items():
        assert float(schedule(step)) == pytest.approx(rate, rel=1e-6), step
        assert rate == pytest.approx(caffe_step(1e-3, 2000, 0.1, step), rel=1e-12)


def test_step_decay_matches_caffe_formula_on_the_optimizer_counter():
    schedule = StepDecay(0.05, step_size=7, gamma=0.5)
    counter = tf.Variable(0, dtype=tf.int64)  # what keras.optimizers.Optimizer.iterations is
    for step in range(0, 40):
        counter.assign(step)
        assert float(schedule(counter)) == pytest.approx(caffe_step(0.05, 7, 0.5, step), rel=1e-6), step


def test_step_decay_drops_exactly_at_multiples_of_the_step_size_at_large_steps():
    # 29,999,999 is not a float32: float division would round it to 3 x 10^7 and drop once too often.
    schedule = StepDecay(1.0, step_size=10_000_000, gamma=0.5)
    assert float(schedule(29_999_999)) == 0.25
    assert float(schedule(30_000_000)) == 0.125


def test_step_decay_with_warmup():
    schedule = StepDecay(0.01, step_size=20, gamma=0.1, warmup_steps=10)
    for step in (0, 4, 9, 10, 19, 20, 45):
        expected = caffe_step(0.01, 20, 0.1, step) * min(1.0, (step + 1) / 10)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-6), step


def test_gamma_one_is_a_constant_rate():
    schedule = StepDecay(0.003, step_size=1, gamma=1.0)
    assert [float(schedule(s)) for s in (0, 1, 1000)] == pytest.approx([0.003] * 3, rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(step_size=0), "step_size must be an integer >= 1, got 0"),
    (dict(step_size=-5), "step_size must be an integer >= 1"),
    (dict(step_size=2.5), "step_size must be an integer >= 1, got 2.5"),
    (dict(step_size=True), "step_size must be an integer >= 1"),
    (dict(step_size=10, gamma=0.0), r"gamma must be in \(0, 1\], got 0.0"),
    (dict(step_size=10, gamma=-0.1), r"gamma must be in \(0, 1\]"),
    (dict(step_size=10, gamma=1.5), r"gamma must be in \(0, 1\], got 1.5"),
    (dict(step_size=10, warmup_steps=-1), "warmup_steps must be >= 0"),
])
def test_step_decay_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StepDecay(1e-3, **kwargs)


# === Serialisation ===
@pytest.mark.parametrize("schedule", [
    StepDecay(1e-3, step_size=2000, gamma=0.1, warmup_steps=5),
    PolyDecay(7e-3, total_steps=3000, power=0.9, warmup_steps=5),
], ids=["step", "poly"])
def test_schedule_json_round_trip(schedule):
    text = json.dumps(keras.saving.serialize_keras_object(schedule))
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(revived) is type(schedule) and revived.get_config() == schedule.get_config()
    for step in (0, 3, 1999, 2000, 2999):
        assert float(revived(step)) == float(schedule(step))
    optimizer = keras.optimizers.SGD.from_config(keras.optimizers.SGD(learning_rate=schedule).get_config())
    assert float(optimizer.learning_rate) == pytest.approx(float(schedule(0)))
    assert type(optimizer._learning_rate) is type(schedule)


# === TrainConfig -> schedule ===
def test_train_config_picks_the_schedule():
    poly = from_train_config(TrainConfig(steps=100, base_learning_rate=0.01, poly_power=0.8, warmup_steps=3))
    assert isinstance(poly, PolyDecay) and poly.get_config() == dict(
        base_learning_rate=0.01, total_steps=100, power=0.8, warmup_steps=3)
    step = from_train_config(TrainConfig(learning_rate_schedule="step", step_size=50, step_gamma=0.2))
    assert isinstance(step, StepDecay) and step.get_config() == dict(
        base_learning_rate=TrainConfig().base_learning_rate, step_size=50, gamma=0.2, warmup_steps=0)
    assert step.describe() == "step: x0.2 every 50 steps"


def test_schedule_fields_parse_as_overrides():
    from experiments import get_experiment

    experiment = apply_overrides(get_experiment("demo"), "train.learning_rate_schedule=step,train.step_size=300,"
                                                         "train.step_gamma=0.5")
    assert isinstance(from_train_config(experiment.train), StepDecay)
    assert (experiment.train.step_size, experiment.train.step_gamma) == (300, 0.5)


@pytest.mark.parametrize("fields, message", [
    (dict(learning_rate_schedule="cosine"), r"train.learning_rate_schedule='cosine'; known: \('poly', 'step'\)"),
    (dict(learning_rate_schedule="Step"), "known: "),
    (dict(learning_rate_schedule="step", step_size=0), r"train.step_size=0 must be >= 1"),
    (dict(learning_rate_schedule="step", step_gamma=0.0), r"train.step_gamma=0.0 must be in \(0, 1\]"),
    (dict(learning_rate_schedule="step", step_gamma=10.0), r"train.step_gamma=10.0 must be in \(0, 1\]"),
    (dict(learning_rate_schedule="step", steps=10, warmup_steps=10), r"train.warmup_steps=10 must be in \[0, "),
    (dict(steps=10, warmup_steps=-1), r"train.warmup_steps=-1 must be in \[0, train.steps=10\)"),
])
def test_train_config_errors_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        from_train_config(TrainConfig(**fields))
    assert SCHEDULES == ("poly", "step")


# === Trainer ===
def test_trainer_refuses_an_unknown_schedule_before_building_anything(tmp_path):
    experiment = apply_overrides(tiny_demo(steps=2), "train.learning_rate_schedule=cosine")
    with pytest.raises(ValueError, match="known: "):
        trainer.train(experiment, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_trainer_optimizer_applies_the_step_schedule():
    """The trainer's SGD on a step schedule (momentum 0, so an update is -lr * gradient): the
    first update uses the base rate, as Caffe's iteration 0 does, then it halves every step."""
    cfg = TrainConfig(learning_rate_schedule="step", step_size=1, step_gamma=0.5, base_learning_rate=0.02,
                      momentum=0.0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    optimizer = trainer._build_optimizer(cfg, model, from_train_config(cfg))
    kernel = model.trainable_variables[0]
    for step in range(4):
        before = kernel.numpy()
        optimizer.apply_gradients([(tf.ones_like(kernel), kernel)])
        np.testing.assert_allclose(before - kernel.numpy(), 0.02 * 0.5 ** step, rtol=1e-6)
