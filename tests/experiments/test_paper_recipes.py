"""Recipe fields that the papers state, across the registered experiments."""

import pytest

import experiments
from deeplab_tf.training.schedules import from_train_config


def all_experiments():
    return {name: experiments.get_experiment(name) for name in experiments.list_experiments()}


def test_every_paper_number_names_its_table():
    for name, experiment in all_experiments().items():
        if experiment.paper_miou:
            assert "Table" in experiment.paper_source, name


def test_deeplab_v1_v2_classifiers_learn_ten_times_faster():
    """v1/v2: "0.01 for the final classifier layer" against 0.001 (v2 Sec. 4.1.1); fc8 /
    fc1_voc12 lr_mult 10 in the released prototxts. DeepLabv3 / v3+ use one learning rate."""
    for name, experiment in all_experiments().items():
        expected = 10.0 if experiment.model.arch == "deeplab_v2" else 1.0
        assert experiment.train.classifier_learning_rate_multiplier == expected, name


def test_coco_initialised_rows_say_so():
    rows = all_experiments()
    for name in ("voc_r101_v2_msc_coco", "context_r101_v2_aspp_crf", "person_part_r101_v2_crf", "voc_v3_mnv2_coco"):
        assert "COCO" in rows[name].train.init_from, name


def test_every_recipe_names_a_valid_learning_rate_schedule():
    for name, experiment in all_experiments().items():
        from_train_config(experiment.train)  # raises ValueError naming the bad field


FOV_ROWS = ("voc_fov_7x7_r4", "voc_fov_4x4_r4", "voc_fov_4x4_r8", "voc_largefov")


def test_field_of_view_rows_carry_deeplab_v1s_step_recipe():
    """v2 Table 1 rows, trained as v1 (v1 Sec. 5 / v2 Sec. 4.1.1): "a mini-batch of 20 images and
    initial learning rate of 0.001 (0.01 for the final classifier layer), multiplying the learning
    rate by 0.1 every 2000 iterations. We use momentum of 0.9 and weight decay of 0.0005"; 6K
    iterations (v2 Table 2's "step" row)."""
    rows = all_experiments()
    for name in FOV_ROWS:
        cfg = rows[name].train
        assert (cfg.learning_rate_schedule, cfg.step_size, cfg.step_gamma) == ("step", 2000, 0.1), name
        assert (cfg.base_learning_rate, cfg.classifier_learning_rate_multiplier) == (1e-3, 10.0), name
        assert (cfg.steps, cfg.batch_size, cfg.momentum, cfg.weight_decay) == (6000, 20, 0.9, 5e-4), name
        schedule = from_train_config(cfg)
        assert [float(schedule(s)) for s in (0, 1999, 2000, 4000, 5999)] == pytest.approx(
            [1e-3, 1e-3, 1e-4, 1e-5, 1e-5], rel=1e-6)
    stepped = {name for name, experiment in rows.items() if experiment.train.learning_rate_schedule == "step"}
    assert stepped == {*FOV_ROWS, "voc_largefov_step_b30_6k"}, "only the v1-trained rows step the learning rate"


def test_learning_policy_rows_are_v2_table_2():
    """v2 Table 2 (LargeFOV, val, before CRF): policy, batch size, iterations, mIoU."""
    table_2 = {("step", 30, 6000): 62.25, ("poly", 30, 6000): 63.42, ("poly", 30, 10000): 64.90,
               ("poly", 10, 10000): 64.71, ("poly", 10, 20000): 65.88}
    rows = {name: e for name, e in all_experiments().items() if e.paper_source.startswith("DeepLab v2 Table 2 (")}
    assert len(rows) == 5
    largefov = experiments.get_experiment("voc_largefov")
    for name, experiment in rows.items():
        cfg = experiment.train
        assert table_2[(cfg.learning_rate_schedule, cfg.batch_size, cfg.steps)] == experiment.paper_miou, name
        assert experiment.model == largefov.model and not experiment.eval.crf, name
        assert cfg.poly_power == 0.9 and cfg.base_learning_rate == 1e-3, name


def test_person_part_rows_follow_v2_section_4_3():
    """No LargeFOV / ASPP ("we do not observe any improvement"), no scale augmentation named;
    MSC 63.1 -> COCO +1.3 -> CRF 64.94."""
    rows = all_experiments()
    msc = (0.5, 0.75, 1.0)
    expected = {"person_part_r101_v2_msc": (msc, False, False, 63.10),
                "person_part_r101_v2_msc_coco": (msc, True, False, 64.40),
                "person_part_r101_v2_crf": (msc, True, True, 64.94)}
    for name, (msc, coco, crf, miou) in expected.items():
        experiment = rows[name]
        assert experiment.model.backbone == "resnet101" and experiment.model.atrous_rates == (1,), name
        assert experiment.model.msc_scales == msc and bool(experiment.train.init_from) == coco, name
        assert experiment.eval.crf == crf and experiment.paper_miou == miou, name
        assert (experiment.data.min_scale, experiment.data.max_scale) == (1.0, 1.0), name
