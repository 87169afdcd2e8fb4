"""DenseCRFParams: published defaults, validation, JSON round trip."""

import json

import pytest

from deeplab_tf.crf import DenseCRFParams, load_params, save_params


def test_defaults_are_deeplab_published_settings():
    assert DenseCRFParams() == DenseCRFParams(w1=4, sigma_alpha=121, sigma_beta=5, w2=3, sigma_gamma=3, iterations=10)


def test_params_are_frozen_and_normalised_to_python_numbers():
    params = DenseCRFParams(w1=5, iterations=3)
    assert isinstance(params.w1, float) and isinstance(params.iterations, int)
    with pytest.raises(AttributeError):
        params.w1 = 3


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("sigma_alpha", 0, "sigma_alpha must be a finite number > 0, got 0"),
        ("sigma_beta", -1.0, "sigma_beta must be a finite number > 0"),
        ("sigma_gamma", float("nan"), "sigma_gamma must be a finite number > 0"),
        ("w1", -0.5, "w1 must be a finite number >= 0, got -0.5"),
        ("w2", float("inf"), "w2 must be a finite number >= 0"),
        ("w1", "4", "w1 must be a finite number >= 0, got '4'"),
        ("iterations", 0, "iterations must be an integer >= 1, got 0"),
        ("iterations", 2.5, "iterations must be an integer >= 1, got 2.5"),
        ("iterations", True, "iterations must be an integer >= 1, got True"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DenseCRFParams(**{field: value})


def test_zero_weights_are_allowed():
    assert DenseCRFParams(w1=0, w2=0).w1 == 0.0


def test_json_round_trip(tmp_path):
    params = DenseCRFParams(w1=5.5, sigma_alpha=45, sigma_beta=3.5, iterations=5)
    path = tmp_path / "crf_params.json"
    save_params(params, str(path), miou=0.5)
    assert json.loads(path.read_text())["miou"] == 0.5
    assert load_params(str(path)) == params


def test_load_refuses_files_without_params(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"w1": 4}')
    with pytest.raises(ValueError, match="has no 'params' object"):
        load_params(str(path))
    path.write_text('{"params": {"w1": 4, "sigma": 3}}')
    with pytest.raises(ValueError, match=r"Unknown DenseCRFParams fields \['sigma'\]"):
        load_params(str(path))


def test_a_file_that_is_not_json_is_refused_naming_it(tmp_path):
    """Before: json's message alone ("Expecting property name enclosed in double quotes ...")."""
    path = tmp_path / "bad.json"
    path.write_text("{bad")
    with pytest.raises(ValueError, match=rf"^{path} is not a JSON file of CRF parameters \(Expecting property name"):
        load_params(str(path))
