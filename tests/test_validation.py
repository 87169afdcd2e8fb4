"""`validate`: one check of a resolved experiment, before anything is built, reporting every bad
value with the allowed ones; `assemble` runs it first."""

import dataclasses
import re

import pytest

import experiments
from deeplab_tf import assembly
from deeplab_tf.assembly import assemble
from deeplab_tf.layers import atrous_auto
from deeplab_tf.validation import validate
from deeplab_tf.config import ModelConfig, apply_overrides


def problems_of(experiment) -> list[str]:
    """The problem lines of `validate`'s error (one line, or a header and one line each)."""
    with pytest.raises(ValueError) as error:
        validate(experiment)
    lines = str(error.value).splitlines()
    if len(lines) == 1:
        return [re.sub(r"^Invalid experiment '[^']*': ", "", lines[0])]
    assert re.fullmatch(rf"Invalid experiment '[^']*' \({len(lines) - 1} problems\):", lines[0]), lines[0]
    return [line.strip() for line in lines[1:]]


@pytest.mark.parametrize("name", experiments.list_experiments())
def test_every_registered_experiment_validates(name):
    validate(experiments.get_experiment(name))


BAD_VALUES = [  # (experiment, override, a part of its problem line)
    ("demo", "model.arch=deeplab_v4",
     "model.arch='deeplab_v4': not a known architecture (did you mean 'deeplab_v3'?); "
     "allowed: deeplab_v2, deeplab_v3, deeplab_v3_plus"),
    ("demo", "model.backbone=resnet",
     "model.backbone='resnet': not a known backbone (did you mean 'resnet50'?); "
     "allowed: mobilenet_v2, resnet101, resnet50, vgg16, xception65"),
    ("demo", "model.atrous_implementation=fft",
     "allowed: native, space_to_batch, shifted_gemm, tap_gradient, gemm_tap_gradient, auto"),
    ("demo", "model.output_stride=32",
     "model.output_stride=32: deeplab_v3_plus does not build at this output stride; allowed: 8, 16"),
    ("voc_largefov", "model.output_stride=4",
     "model.output_stride=4: deeplab_v2 does not build at this output stride; allowed: 8, 16, 32"),
    ("demo", "eval.output_stride=32",
     "eval.output_stride=32: deeplab_v3_plus does not build at this output stride; allowed: 8, 16"),
    ("voc_largefov", "model.head=aspp", "model.head='aspp': not a DeepLab v2 head; allowed: fc, classifier"),
    ("voc_largefov", "model.atrous_rates=(12,12)",
     "model.atrous_rates=(12, 12): DeepLab v2 needs one distinct rate per branch"),
    ("voc_largefov", "model.atrous_rates=[]", "allowed: a non-empty tuple of distinct positive integers"),
    ("demo", "model.atrous_rates=(6,0,18)", "model.atrous_rates=(6, 0, 18): ASPP rates must be distinct positive"),
    ("demo", "model.atrous_rates=(6,6)", "allowed: a tuple of distinct positive integers, e.g. (6, 12, 18)"),
    ("voc_largefov", "model.backbone_alpha=0.5",
     "backbone 'vgg16' has no width multiplier; allowed: 1.0 (width multipliers exist for mobilenet_v2)"),
    ("demo", "model.backbone_alpha=0",
     "model.backbone_alpha=0.0: the width multiplier must be positive; allowed: numbers > 0"),
    ("voc_v3_os16", "model.multi_grid=(1,2)",
     "model.multi_grid=(1, 2): one rate multiplier per unit of the last block of 'resnet101'; "
     "allowed: () or 3 positive integers"),
    ("demo", "model.multi_grid=(1,2,4)",
     "backbone 'mobilenet_v2' has no multi-grid; allowed: () (multi-grid backbones: resnet101, resnet50, xception65)"),
    ("voc_r101_v2", "model.multi_grid=(1,2,4)", "DeepLab v2 has no multi-grid (only v3/v3+); allowed: ()"),
    ("demo", "model.msc_scales=(1.0,)",
     "model.msc_scales=(1.0,): multi-scale inputs need at least two distinct positive scales"),
    ("demo", "model.msc_scales=(0.5,-1.0)", "allowed: () (off) or >= 2 distinct numbers > 0"),
    ("voc_r101_v2_msc", "model.msc_scales=(0.5,0.5,1.0)",
     "model.msc_scales=(0.5, 0.5, 1.0): multi-scale inputs need at least two distinct positive scales"),
    ("demo", "model.dropout_rate=1.0", "model.dropout_rate=1.0: a dropout rate is a fraction; allowed: 0 <= rate < 1"),
    ("demo", "model.aspp_filters=0", "model.aspp_filters=0: aspp filters must be at least 1; allowed: integers >= 1"),
    ("demo", "model.batch_norm_momentum=1.5", "allowed: 0 <= momentum <= 1"),
    ("demo", "data.dataset=camvd",
     "data.dataset='camvd': not a known dataset (did you mean 'camvid'?); allowed: ade20k, camvid, camvid_folder, "),
    ("demo", "data.crop_size=0",
     "data.crop_size=(0, 0): the crop is (height, width) in pixels; allowed: two integers >= 1"),
    ("demo", "data.crop_size=(321,)", "data.crop_size=(321,)"),
    ("demo", "data.min_scale=0",
     "data.min_scale=0.0: the smallest random scale must be positive; allowed: numbers > 0"),
    ("demo", "data.min_scale=1.5,data.max_scale=1.0",
     "data.max_scale=1.0: must not be below data.min_scale=1.5; allowed: numbers >= 1.5"),
    ("demo", "data.shuffle_buffer=-1", "allowed: integers >= 0"),
    ("demo", "data.train_split=''", "data.train_split='': a split must be named"),
    ("demo", "train.steps=-5",
     "train.steps=-5: the number of training steps must be at least 1; allowed: integers >= 1"),
    ("demo", "train.batch_size=0", "train.batch_size=0: the batch size must be at least 1; allowed: integers >= 1"),
    ("demo", "train.checkpoint_every=0", "train.checkpoint_every=0: the checkpoint interval must be at least 1"),
    ("demo", "train.log_every=0", "train.log_every=0"),
    ("demo", "train.base_learning_rate=-0.01",
     "train.base_learning_rate=-0.01: a learning rate must not be negative; allowed: numbers >= 0"),
    ("demo", "train.base_learning_rate=nan", "train.base_learning_rate=nan"),
    ("demo", "train.learning_rate_schedule=cosine",
     "train.learning_rate_schedule='cosine': not a learning-rate schedule; allowed: poly, step"),
    ("demo", "train.step_size=0", "train.step_size=0"),
    ("demo", "train.step_gamma=0",
     "train.step_gamma=0.0: the factor applied every step_size; allowed: 0 < gamma <= 1"),
    ("demo", "train.warmup_steps=600",
     "train.warmup_steps=600: the warm-up must end before train.steps=600; allowed: integers 0..599"),
    ("demo", "train.momentum=-0.1", "allowed: 0 <= momentum <= 1"),
    ("demo", "train.weight_decay=-1e-4", "train.weight_decay=-0.0001"),
    ("demo", "train.seed=-1", "train.seed=-1: a random seed is a 32-bit unsigned integer"),
    ("demo", "train.mixed_precision=bf16",
     "train.mixed_precision='bf16': not a known precision; "
     "allowed: '' (float32), mixed_float16, mixed_bfloat16, float64"),
    ("demo", "train.class_weighting=median",
     "train.class_weighting='median': not a known class weighting (did you mean 'median_frequency'?); "
     "allowed: '' (none), median_frequency"),
    ("demo", "train.classifier_learning_rate_multiplier=-1", "train.classifier_learning_rate_multiplier=-1.0"),
    ("demo", "eval.batch_size=0", "eval.batch_size=0"),
    ("demo", "eval.fusion=avg", "eval.fusion='avg': not a fusion of the test-time passes; allowed: mean, max"),
    ("demo", "eval.scales=(0.5,0)", "eval.scales=(0.5, 0.0): test-time scales must be positive"),
    ("demo", "eval.scales=[]", "eval.scales=(): test-time scales must be positive"),
    ("demo", "eval.tile_size=(513,0)",
     "eval.tile_size=(513, 0): windows are (height, width) in pixels; "
     "allowed: (0, 0) (whole images) or two integers >= 1"),
    ("demo", "eval.tile_size=(8,8)",
     "eval.tile_size=(8, 8): windows smaller than the output stride 16; allowed: (0, 0) or sides >= 16"),
    ("demo", "eval.tile_size=(200,200),eval.tile_overlap=192",
     "eval.tile_overlap=192: must be smaller than the window eval.tile_size=(200, 200) rounded down to a multiple of "
     "the output stride 16 (192); allowed: integers 0..191"),
    ("demo", "eval.tile_overlap=-1", "eval.tile_overlap=-1: the window overlap must be at least 0"),
    ("demo", "eval.trimap_widths=(0,1)", "eval.trimap_widths=(0, 1): boundary band widths are positive pixel counts"),
    ("demo", "model.backbone_padding=same",
     "model.backbone_padding='same': not a backbone padding (did you mean 'tf_same'?); allowed: keras, tf_same"),
    ("voc_v3plus_xception65", "model.backbone_padding=tf_same",
     "backbone 'xception65' pads as published already; allowed: 'keras' ('tf_same' for mobilenet_v2, resnet101"),
    ("demo", "model.backbone_channel_divisor=0",
     "model.backbone_channel_divisor=0: the channel divisor must be at least 1; allowed: integers >= 1"),
    ("voc_v3_os16", "model.backbone_channel_divisor=1",
     "backbone 'resnet101' has no width multiplier to round; allowed: 8 (other divisors for mobilenet_v2)"),
    ("demo", "model.backbone_channel_divisor=1,model.backbone_weights=w.h5",
     "ImageNet weights exist only for Keras' widths (model.backbone_weights='w.h5'); allowed: 8, or"),
    ("voc_largefov", "model.aspp_image_pooling=false", "DeepLab v2 has no image pooling to drop (only v3/v3+)"),
    ("voc_largefov", "model.align_corners=true", "model.align_corners=True: DeepLab v2 resizes as Keras"),
    ("voc_r101_v2", "model.backbone_padding=tf_same", "DeepLab v2 builds Keras' padding (TF1 options only for v3/v3+)"),
    ("demo", "eval.pad_to_size=(513,0)",
     "eval.pad_to_size=(513, 0): images are padded to (height, width) pixels; allowed: (0, 0) (no padding)"),
    ("demo", "eval.pad_value=(127.5,)", "eval.pad_value=(127.5,): the pad colour is one RGB pixel; allowed: three"),
    ("demo", "eval.pad_value=(0,0,300)", "eval.pad_value=(0.0, 0.0, 300.0)"),
]


@pytest.mark.parametrize("base, override, expected", BAD_VALUES)
def test_each_bad_value_is_reported_with_the_allowed_ones(base, override, expected):
    (problem,) = problems_of(apply_overrides(experiments.get_experiment(base), override))
    assert expected in problem
    assert "; allowed: " in problem


def test_every_problem_is_reported_at_once():
    experiment = apply_overrides(
        experiments.get_experiment("demo"),
        "model.arch=deeplab_v4,train.steps=-5,data.crop_size=0,train.batch_size=0,eval.fusion=avg,data.dataset=nope",
    )
    problems = problems_of(experiment)
    assert [p.split("=")[0] for p in problems] == [
        "model.arch", "data.dataset", "data.crop_size", "train.steps", "train.batch_size", "eval.fusion",
    ]
    assert all("; allowed: " in p for p in problems)


def test_one_problem_is_one_line():
    with pytest.raises(ValueError) as error:
        validate(apply_overrides(experiments.get_experiment("demo"), "train.steps=-5"))
    assert str(error.value) == (
        "Invalid experiment 'demo': train.steps=-5: the number of training steps must be at least 1; "
        "allowed: integers >= 1"
    )


def test_values_of_the_wrong_type_are_reported_not_crashed_on():
    """A library user may build configs by hand, without `apply_overrides`' type coercion."""
    experiment = dataclasses.replace(
        experiments.get_experiment("demo"),
        model=ModelConfig(output_stride="16", atrous_rates=(6.5,), backbone_alpha="1", msc_scales=("a", "b")),
    )
    assert [p.split("=")[0] for p in problems_of(experiment)] == [
        "model.backbone_alpha", "model.output_stride", "model.atrous_rates", "model.msc_scales",
    ]


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Makes reading data or building a model fail the test."""

    def built(*args, **kwargs):
        raise AssertionError("built or read something before validating")

    monkeypatch.setattr(assembly, "build_model", built)
    monkeypatch.setattr(assembly.data, "get_source", built)


def test_assemble_validates_before_building_anything(nothing_is_built):
    experiment = apply_overrides(experiments.get_experiment("demo"), "train.steps=-5,model.arch=deeplab_v4")
    with pytest.raises(ValueError, match=r"\(2 problems\):\n  model.arch='deeplab_v4'.*\n  train.steps=-5"):
        assemble(experiment)


def test_assemble_checks_its_output_stride_for_the_arch(nothing_is_built):
    with pytest.raises(ValueError, match=r"^Invalid experiment 'demo': output_stride=32: .*allowed: 8, 16$"):
        assemble(experiments.get_experiment("demo"), output_stride=32)
    # The evaluator builds at eval.output_stride: reported once, as that field.
    experiment = apply_overrides(experiments.get_experiment("demo"), "eval.output_stride=32")
    with pytest.raises(ValueError, match=r"^Invalid experiment 'demo': eval.output_stride=32: .*allowed: 8, 16$"):
        assemble(experiment, output_stride=experiment.eval.output_stride)


def test_training_native_atrous_is_refused_where_its_gradients_are_missing(monkeypatch):
    """On a machine whose kernels lack float16 gradients of dilated convolutions (faked), training
    `native` in mixed_float16 is refused naming both fields; evaluating or exporting it (no
    gradients), training another precision, `auto`, or a separable ASPP (depthwise) is not."""
    monkeypatch.setattr(atrous_auto, "native_has_dilated_gradients", lambda dtype: dtype != "float16")
    native = apply_overrides(experiments.get_experiment("demo"),
                             "model.atrous_implementation=native,train.mixed_precision=mixed_float16")
    with pytest.raises(ValueError) as error:
        validate(native, training=True)
    assert re.fullmatch(r"Invalid experiment 'demo': model\.atrous_implementation='native' with "
                        r"train\.mixed_precision='mixed_float16': [^\n]*float16[^\n]*; allowed: [^\n]*auto[^\n]*",
                        str(error.value))
    validate(native)
    for override in ("train.mixed_precision=mixed_bfloat16", "model.atrous_implementation=auto",
                     "model.separable=true"):
        validate(apply_overrides(native, override), training=True)
