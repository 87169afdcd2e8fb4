"""Fixture of the speed-tuning tests of layers: a script run in two replicas (the tuning cache
fixtures, `cache_file` and `timed`, are in tests/conftest.py: the loss tunes too)."""

import json
import os
import subprocess
import sys

import pytest

from deeplab_tf.layers import autotune

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWO_REPLICAS = """
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
"""


@pytest.fixture
def run_in_two_replicas(tmp_path):
    """Returns `run(script)`: runs `script` in a fresh Python process (repo root as working folder)
    after lines that define `strategy`, a MirroredStrategy of two replicas on two logical CPUs;
    tuning is on, timing for real, with its cache file under `tmp_path` (XDG_CACHE_HOME). `run`
    returns the JSON value of the script's last printed line (and fails the test if it fails)."""
    def run(script):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", autotune.SWITCH: "1", "XDG_CACHE_HOME": str(tmp_path)}
        result = subprocess.run([sys.executable, "-c", TWO_REPLICAS + script], capture_output=True, text=True,
                                env=env, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run
