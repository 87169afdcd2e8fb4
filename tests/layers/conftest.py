"""Fixtures of the speed-tuning tests (deeplab_tf.layers.autotune and the layers that tune)."""

import pytest

from deeplab_tf.layers import autotune


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
