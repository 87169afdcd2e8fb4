"""Pure helpers of bench/peers_compare.py: sizes, timing summaries, ratios, venv plans, inputs."""

import numpy as np
import pytest

from bench.peers import protocol, report, venvs
from tests.fake_cpu import BFLOAT16_CPU, FLOAT32_CPU, fake_cpuinfo


@pytest.mark.parametrize("text, expected", [("513", (513, 513)), ("1024x2048", (1024, 2048)), ("65X97", (65, 97))])
def test_parse_size(text, expected):
    assert report.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "1x2x3", "ax3"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        report.parse_size(text)


def test_summarize_inference_and_training():
    stats = report.summarize([2.0, 1.0, 4.0], batch=4, mode="training")
    assert (stats["min_s"], stats["median_s"], stats["max_s"], stats["n"]) == (1.0, 2.0, 4.0, 3)
    assert (stats["min_img_s"], stats["median_img_s"], stats["max_img_s"]) == (1.0, 2.0, 4.0)
    assert "median_img_s" not in report.summarize([1.0], batch=1, mode="inference")
    assert report.summarize([], batch=1, mode="inference") == {}


def test_speedup_and_gflops():
    fast, slow = report.summarize([0.5], 1, "inference"), report.summarize([2.0], 1, "inference")
    assert report.speedup(fast, slow) == 4.0
    assert report.speedup(fast, {}) is None
    assert report.gflops_per_s(100.0, 2.0, "inference") == 50.0
    assert report.gflops_per_s(100.0, 2.0, "training") == 150.0


def test_table_has_a_row_per_peer_and_marks_failures():
    rows = [
        {"name": "deeplab_tf", "version": "x", "stats": report.summarize([1.0, 2.0], 4, "training"), "speedup": 1.0,
         "gflop": 100.0, "gflops": 200.0, "rss_mib": 1000.0},
        {"name": "torch", "version": "y", "error": "boom"},
    ]
    text = report.table(rows, "training").splitlines()
    assert len(text) == 4
    assert text[2] == "| deeplab_tf | x | 2.000 | 2.667 | 4.000 | 1.500 | 1.00 | 100.0 | 200.0 | 1000 |"
    assert "failed: boom" in text[3]


def test_make_inputs_is_deterministic_and_shaped():
    config = {"batch": 2, "height": 5, "width": 7, "num_classes": 3, "seed": 1}
    images, labels = protocol.make_inputs(config)
    again, _ = protocol.make_inputs(config)
    assert images.shape == (2, 5, 7, 3) and images.dtype == np.float32
    assert labels.shape == (2, 5, 7) and labels.min() >= 0 and labels.max() < 3
    np.testing.assert_array_equal(images, again)


def test_venv_marker_must_match_the_plan(tmp_path):
    plan = venvs.PLANS["torch"]
    assert not venvs.is_current(None, plan)
    assert not venvs.is_current({"plan": plan, "ok": False}, plan)
    assert not venvs.is_current({"plan": [[["torch==0"]]], "ok": True}, plan)
    assert venvs.is_current({"plan": plan, "ok": True}, plan)
    assert venvs.read_marker(str(tmp_path), "torch") is None
    assert set(venvs.PLANS) == set(venvs.REPORTED)


@pytest.mark.parametrize("name", ["deeplab_tf_uncached", "torch_frozen"])
def test_inference_only_peers_are_refused_for_training(name, capsys):
    from bench import peers_compare

    assert name in peers_compare.parse_args(["--mode=inference", f"--peers=torch,{name}"]).peer_list
    with pytest.raises(SystemExit):
        peers_compare.parse_args(["--mode=training", f"--peers=torch,{name}"])
    error = capsys.readouterr().err
    assert f"{name} " in error and "inference only" in error


def test_each_deeplab_peer_differs_from_deeplab_tf_in_its_one_setting(tmp_path, monkeypatch):
    """On a CPU where TensorFlow turns oneDNN's ops on itself (next test: the others)."""
    from bench import peers_compare
    from deeplab_tf.onednn_weight_cache import FROZEN_WEIGHTS_VARIABLE as FROZEN

    fake_cpuinfo(monkeypatch, tmp_path, BFLOAT16_CPU)

    def env(name, mode="inference"):
        return peers_compare.deeplab_environment(name, mode, str(tmp_path))

    assert env("deeplab_tf") == {FROZEN: "1"} and env("deeplab_tf", "training") == {}
    assert env("deeplab_tf_uncached") == {FROZEN: "0"}
    assert env("deeplab_tf_onednn_ops") == {FROZEN: "1", "TF_ENABLE_ONEDNN_OPTS": "1"}
    assert env("deeplab_tf_onednn_ops", "training") == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert env("deeplab_tf_autotuned", "training") == {"DEEPLAB_TF_AUTOTUNE": "1",
                                                       "XDG_CACHE_HOME": str(tmp_path / "autotune_cache")}
    assert set(peers_compare.DEEPLAB_PEERS) <= set(peers_compare.ALL_PEERS)


@pytest.mark.parametrize("setting", [None, "0"])
def test_on_a_cpu_where_tensorflow_runs_eigen_the_deeplab_peers_run_as_the_commands_do(setting, monkeypatch, tmp_path):
    """AVX2 only: oneDNN's ops on for every deeplab-tf peer (deeplab_tf/onednn_ops.py), unless the
    driver's environment sets the variable (then inherited as it is)."""
    from bench import peers_compare

    fake_cpuinfo(monkeypatch, tmp_path, FLOAT32_CPU)
    if setting is None:
        monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    else:
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", setting)
    expected = {"TF_ENABLE_ONEDNN_OPTS": "1"} if setting is None else {}
    for name in peers_compare.DEEPLAB_PEERS:
        environment = peers_compare.deeplab_environment(name, "training", str(tmp_path))
        assert {key: value for key, value in environment.items() if key == "TF_ENABLE_ONEDNN_OPTS"} == (
            {"TF_ENABLE_ONEDNN_OPTS": "1"} if name == "deeplab_tf_onednn_ops" else expected)
