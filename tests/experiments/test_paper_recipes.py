"""Recipe fields that the papers state, across the registered experiments."""

import experiments


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
