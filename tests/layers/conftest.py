"""Fixtures of the speed-tuning tests (deeplab_tf.layers.autotune and the layers that tune)."""

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
def cache_file(tmp_path, monkeypatch):
    """Tuning on, with its cache under `tmp_path`; returns the cache file's path (not written yet)."""
    monkeypatch.setenv(autotune.SWITCH, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "deeplab_tf" / "autotune.json"


@pytest.fixture
def timed(monkeypatch):
    """Counts the candidates timed: returns a list that gets one entry per run `autotune.measure`
    times. Runs are not run: each takes "1 ms", so a pick is the first candidate (ties)."""
    runs = []
    monkeypatch.setattr(autotune, "measure", lambda run: runs.append(run) or 1e-3)
    return runs


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
