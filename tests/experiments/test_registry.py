"""Experiment lookup: known names resolve, unknown names list the known ones and the closest."""

import pytest

import experiments


def test_known_experiments_exist():
    names = experiments.list_experiments()
    assert {"demo", "camvid_mnv2_v3plus"} <= set(names)
    assert experiments.get_experiment("demo").name == "demo"
    assert experiments.list_experiments("camvid_*") == ["camvid_mnv2_v3plus", "camvid_mnv2_voc_transfer"]


def test_unknown_name_lists_known_and_closest():
    with pytest.raises(ValueError, match=r"Did you mean 'camvid_mnv2_v3plus'.*Known experiments: .*demo"):
        experiments.get_experiment("camvid_mnv2_v3")
