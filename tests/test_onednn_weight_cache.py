"""oneDNN's weight cache: `cache_served_weights` turns it on only where the environment is silent
and reads TensorFlow's booleans; `refuse_for_training` stops training under it. The premise (under
the variable a convolution keeps its first weights) is checked on TensorFlow itself in a new
process, against the NumPy-free identity conv(x, 2w) = 2 conv(x, w)."""

import os
import subprocess
import sys

import pytest

from deeplab_tf.onednn_weight_cache import FROZEN_WEIGHTS_VARIABLE, cache_served_weights, refuse_for_training


@pytest.fixture
def environment(monkeypatch):
    """This test's own view of the variable: unset to start with, restored afterwards (also when
    `cache_served_weights` set it: `setenv` first makes monkeypatch remember the original)."""
    monkeypatch.setenv(FROZEN_WEIGHTS_VARIABLE, "0")
    monkeypatch.delenv(FROZEN_WEIGHTS_VARIABLE)
    return monkeypatch


def test_serving_turns_the_cache_on_where_the_environment_is_silent(environment):
    assert cache_served_weights() == (True, "oneDNN weight cache on (set by deeplab-tf for serving)")
    assert os.environ[FROZEN_WEIGHTS_VARIABLE] == "1"


@pytest.mark.parametrize("value, on", [("0", False), ("false", False), ("FALSE", False), ("1", True), ("True", True)])
def test_the_users_setting_is_kept(environment, value, on):
    environment.setenv(FROZEN_WEIGHTS_VARIABLE, value)
    line = f"oneDNN weight cache {'on' if on else 'off'} ({FROZEN_WEIGHTS_VARIABLE}={value} in the environment)"
    assert cache_served_weights() == (on, line)
    assert os.environ[FROZEN_WEIGHTS_VARIABLE] == value


def test_a_value_tensorflow_cannot_read_is_named(environment):
    environment.setenv(FROZEN_WEIGHTS_VARIABLE, "yes")
    with pytest.raises(ValueError, match=r"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS='yes' is not a boolean"):
        cache_served_weights()
    with pytest.raises(ValueError, match="is not a boolean"):
        refuse_for_training()


@pytest.mark.parametrize("value, refused", [(None, False), ("0", False), ("false", False), ("1", True), ("true", True)])
def test_training_is_refused_only_under_the_cache(environment, value, refused):
    if value is not None:
        environment.setenv(FROZEN_WEIGHTS_VARIABLE, value)
    if refused:
        with pytest.raises(ValueError, match=f"{FROZEN_WEIGHTS_VARIABLE}={value} is set.*training"):
            refuse_for_training()
    else:
        assert refuse_for_training() is None


STALE_WEIGHTS_PROBE = """
import numpy as np, tensorflow as tf
x = tf.constant(np.random.default_rng(0).random((1, 9, 9, 4)), tf.float32)
w = tf.Variable(np.random.default_rng(1).random((3, 3, 4, 4)), dtype=tf.float32)
conv = tf.function(lambda x: tf.nn.conv2d(x, w, 1, "SAME"))
first = conv(x).numpy()
w.assign(2.0 * w)
print(float(np.median(conv(x).numpy() / first)))
"""


@pytest.mark.parametrize("value, ratio", [("0", 2.0), ("1", 1.0)])
def test_under_the_variable_a_convolution_keeps_its_first_weights(value, ratio):
    """Why training must refuse it: with doubled weights the output doubles, except under the cache."""
    env = dict(os.environ, **{FROZEN_WEIGHTS_VARIABLE: value, "TF_CPP_MIN_LOG_LEVEL": "2"})
    result = subprocess.run([sys.executable, "-c", STALE_WEIGHTS_PROBE], capture_output=True, text=True, env=env,
                            check=True)
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":  # TensorFlow's own kernels: no cache to keep them
        ratio = 2.0
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(ratio, rel=1e-5)
