"""Config overrides: parsing by field type, unknown fields refused, round trip through JSON."""

import json

import pytest

from deeplab_tf.config import Experiment, apply_overrides, from_dict, from_file


def test_overrides_parse_by_field_type():
    experiment = apply_overrides(
        Experiment(name="x"),
        "train.steps=200,data.crop_size=321,train.base_learning_rate=1e-3,data.random_flip=false",
    )
    assert experiment.train.steps == 200
    assert experiment.data.crop_size == (321, 321)
    assert experiment.train.base_learning_rate == pytest.approx(1e-3)
    assert experiment.data.random_flip is False


def test_overrides_accept_tuples_lists_and_paths():
    experiment = apply_overrides(
        Experiment(name="x"),
        ["data.crop_size=(257,129)", "model.atrous_rates=[12,24,36]", "data.data_dir='/tmp/a,b'"],
    )
    assert experiment.data.crop_size == (257, 129)
    assert experiment.model.atrous_rates == (12, 24, 36)
    assert experiment.data.data_dir == "/tmp/a,b"
    # An unquoted comma outside brackets separates overrides: "b" is not a section.field=value pair.
    with pytest.raises(ValueError, match="not of the form"):
        apply_overrides(Experiment(name="x"), "data.data_dir=/tmp/a,b")


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=3", r"train has no field 'stepz'.*Did you mean train.steps"),
        ("training.steps=3", "must be one of"),
        ("train.steps=2.5", r"train.steps=2.5 does not fit"),
        ("train.steps=many", "does not fit"),
        ("data.random_flip=3", "does not fit"),
        ("train.steps=1" + "0" * 400, r"^train.steps=10{400} does not fit the field's type \(int too large"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(Experiment(name="x"), override)


def test_json_round_trip():
    experiment = apply_overrides(Experiment(name="x"), "data.crop_size=(65,97)")
    assert from_dict(json.loads(experiment.to_json())) == experiment


def test_a_config_file_round_trip(tmp_path):
    experiment = apply_overrides(Experiment(name="x", paper_miou=71.5), "data.crop_size=(65,97)")
    (tmp_path / "config.json").write_text(experiment.to_json())
    assert from_file(str(tmp_path / "config.json")) == experiment


@pytest.mark.parametrize("content, reason", [
    (b"[1]", "the config is a list, not an object of Experiment fields"),
    (b"{}", "the config has no experiment name (a text 'name'), got None"),
    (b'{"architectures": ["BertModel"], "hidden_size": 768, "model": "bert"}',
     "the config has unknown fields ['architectures', 'hidden_size']; known: ['data', 'description',"),
    (b'{"name": "x", "model": "bert"}', "model is a str, not an object of ModelConfig fields"),
    (b'{"name": "x", "train": {"steps": "many"}}', "train.steps='many' does not fit the field's type"),
    (b"not json", "Expecting value: line 1 column 1 (char 0)"),
    (b"\xff\xfe", "'utf-8' codec can't decode byte 0xff"),
], ids=["list", "empty", "another_programs", "section_not_an_object", "wrong_type", "not_json", "binary"])
def test_a_file_that_is_not_an_experiment_config_is_refused_naming_it(tmp_path, content, reason):
    """Before: an AttributeError or KeyError traceback, or a message without the file."""
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        from_file(str(path))
    assert str(error.value).startswith(f"{path} does not hold a deeplab-tf experiment config ({reason}")
