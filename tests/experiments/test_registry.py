"""Experiment lookup: known names resolve, unknown names list the known ones and the closest."""

import pytest

import experiments


def test_known_experiments_exist():
    names = experiments.list_experiments()
    assert {"demo", "camvid_mnv2_v3plus"} <= set(names)
    assert experiments.get_experiment("demo").name == "demo"
    assert experiments.list_experiments("camvid_*") == ["camvid_mnv2_v3plus", "camvid_mnv2_v3plus_separable", "camvid_mnv2_voc_transfer"]


def test_unknown_name_lists_known_and_closest():
    with pytest.raises(ValueError, match=r"Did you mean 'camvid_mnv2_v3plus'.*Known experiments: .*demo"):
        experiments.get_experiment("camvid_mnv2_v3")


def test_experiments_command_lists_the_official_networks():
    from deeplab_tf.cli.experiments import experiment_rows

    rows = {row["name"]: row for row in experiment_rows("*_official", count_params=False)}
    assert set(rows) == {"voc_v3_mnv2_official", "voc_v3_mnv2_dm05_official", "voc_v3plus_xception65_official",
                         "cityscapes_v3plus_xception65_official"}
    assert rows["voc_v3plus_xception65_official"]["paper_miou"] == 82.20
    assert rows["cityscapes_v3plus_xception65_official"]["model"] == "deeplab_v3_plus xception65"
    assert rows["cityscapes_v3plus_xception65_official"]["dataset"] == "cityscapes/train"
