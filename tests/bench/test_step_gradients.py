"""bench/step_gradients.py: variant specs and the per-variable gradient comparison."""

import os

import numpy as np
import pytest

from bench import step_gradients


def test_a_variant_spec_splits_into_environment_overrides_and_noise():
    assert step_gradients.parse_variant("tuned:") == ("tuned", {}, [], (0.0, 1))
    assert step_gradients.parse_variant(
        "f64:train.mixed_precision=float64;env:DEEPLAB_TF_AUTOTUNE=0;model.fused_batch_norm=false;noise:1e-6/3"
    ) == ("f64", {"DEEPLAB_TF_AUTOTUNE": "0"}, ["train.mixed_precision=float64", "model.fused_batch_norm=false"],
          (1e-6, 3))
    with pytest.raises(ValueError, match="NAME:SPEC"):
        step_gradients.parse_variant(":model.fused_batch_norm=false")


def test_each_error_is_relative_to_that_gradients_largest_element():
    reference = {"a": np.array([4.0, -2.0]), "b": np.array([[0.5, 0.25]]), "c": np.array([1.0])}
    other = {"a": np.array([4.0, -1.0]), "b": np.array([[0.5, 0.2]]), "c": np.array([1.0])}
    # By hand: a: 1 / 4 = 0.25; b: 0.05 / 0.5 = 0.1; c: 0; median 0.1.
    result = step_gradients.compare(reference, other)
    assert result["max_variable"] == "a"
    assert result["max"] == pytest.approx(0.25) and result["median"] == pytest.approx(0.1)


def test_variants_that_train_different_variables_are_refused():
    with pytest.raises(ValueError, match="different variables"):
        step_gradients.compare({"a": np.ones(2)}, {"b": np.ones(2)})


def test_environment_is_restored_after_the_block(monkeypatch):
    monkeypatch.setenv("DEEPLAB_TF_TEST_A", "before")
    monkeypatch.delenv("DEEPLAB_TF_TEST_B", raising=False)
    with step_gradients.environment({"DEEPLAB_TF_TEST_A": "in", "DEEPLAB_TF_TEST_B": "in"}):
        assert os.environ["DEEPLAB_TF_TEST_A"] == os.environ["DEEPLAB_TF_TEST_B"] == "in"
    assert os.environ["DEEPLAB_TF_TEST_A"] == "before" and "DEEPLAB_TF_TEST_B" not in os.environ
