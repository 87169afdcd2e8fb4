"""`python -m deeplab_tf.cli.experiments`: one row per experiment with the paper's number."""

from deeplab_tf.cli.experiments import experiment_rows, format_rows


def test_rows_and_table():
    rows = {r["name"]: r for r in experiment_rows("voc_*", count_params=False)}
    assert rows["voc_aspp_l"]["paper_miou"] == 71.57
    assert rows["voc_aspp_l"]["dataset"] == "voc2012_segmentation/train_aug"
    assert rows["voc_v3_r50_os16"]["paper_miou"] is None
    table = format_rows(list(rows.values())).splitlines()
    assert table[0].split()[:3] == ["name", "model", "dataset"]
    assert any(line.startswith("voc_aspp_l ") and "71.57" in line for line in table)


def test_parameter_count_is_the_built_models():
    (row,) = experiment_rows("demo")
    assert 0.5 < row["params"] < 0.7  # 580,228 parameters when this was written
