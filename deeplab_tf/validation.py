"""`validate(experiment)`: every closed set and range of an experiment checked once, when it is
resolved (`deeplab_tf.cli.flags.resolve_experiment`) and before anything is built
(`deeplab_tf.assembly.assemble`; the trainer adds what only training needs,
`validate(..., training=True)`); all problems are reported in one error, each with its allowed
values."""

import difflib
import math

import keras

from deeplab_tf import backbones, data
from deeplab_tf.config import CLASS_WEIGHTINGS, FUSIONS, PRECISIONS, SCHEDULES, Experiment
from deeplab_tf.layers import ATROUS_IMPLEMENTATIONS, atrous_auto
from deeplab_tf.models import ARCHITECTURES
from deeplab_tf.models.deeplab_v2 import HEADS


def validate(experiment: Experiment, output_stride: int = 0, training: bool = False) -> None:
    """Checks every field of `experiment` that has a closed set of values or a range, and the
    fields that constrain each other, once, without building or reading anything.

    Raises one ValueError listing every problem, each as
    `section.field=value: <why>; allowed: <the allowed values or range>`. The allowed names
    come from the modules that own them (architectures, backbones, atrous implementations,
    heads, datasets, schedules, precisions, class weightings, fusions). Files (`data.data_dir`,
    `model.backbone_weights`, `train.init_checkpoint`) and split names are checked where they
    are opened. `output_stride` > 0 (what `assemble` builds at instead of the experiment's) is
    checked against the architecture too. With `training` (the trainer, once `train.mixed_precision`
    is resolved), the fields only training needs are checked too (`_training_problems`).
    """
    problems = _problems(experiment) + (_training_problems(experiment) if training else [])
    if output_stride and output_stride != experiment.eval.output_stride:  # that one is checked already
        problem = _output_stride_problem("output_stride", output_stride, experiment.model.arch)
        problems += [problem] if problem else []
    _raise_if_any(experiment, problems)


def _raise_if_any(experiment: Experiment, problems: list[str]) -> None:
    """Raises ValueError with `problems`: one line for one problem, else a header and one per line."""
    if len(problems) == 1:
        raise ValueError(f"Invalid experiment {experiment.name!r}: {problems[0]}")
    if problems:
        raise ValueError(
            f"Invalid experiment {experiment.name!r} ({len(problems)} problems):\n"
            + "\n".join(f"  {p}" for p in problems)
        )


# DeepLabv3/v3+ state their ASPP rates at output stride 16 and double them at 8
# (`models.deeplab.build_deeplab` refuses other strides); DeepLab v2 builds at any backbone stride.
V3_OUTPUT_STRIDES = (8, 16)


def output_strides(arch: str) -> tuple:
    """Returns the output strides `arch` builds at (() for an unknown architecture)."""
    if arch == "deeplab_v2":
        return tuple(backbones.OUTPUT_STRIDES)
    return V3_OUTPUT_STRIDES if arch in ARCHITECTURES else ()


def _backbone_names() -> tuple:
    """The registered backbone names (`backbones.BACKBONE_NAMES`, the one backbone registry)."""
    return tuple(backbones.BACKBONE_NAMES)


def _has_width_multiplier(name: str) -> bool:
    """Whether backbone `name` takes `alpha` (its registry entry's `has_width_multiplier`)."""
    return bool(getattr(backbones.get_backbone_spec(name), "has_width_multiplier", False))


def _width_multiplier_backbones() -> list[str]:
    return [n for n in _backbone_names() if _has_width_multiplier(n)]


def _keras_application_backbones() -> list[str]:
    """The backbones `model.backbone_padding="tf_same"` applies to (Keras Applications specs)."""
    return [n for n in _backbone_names() if isinstance(backbones.get_backbone_spec(n), backbones.KerasApplication)]


def _multi_grid_units(name: str) -> int:
    """How many ints backbone `name`'s multi-grid holds, 0 if it has none."""
    return backbones.get_backbone_spec(name).multi_grid_units


def _dataset_names() -> list[str]:
    """The registered dataset names (`data.SOURCES`, the one source registry)."""
    return sorted(data.SOURCES)


def _training_choices() -> tuple[tuple, tuple]:
    """(precisions, class weightings) the trainer accepts."""
    return PRECISIONS, CLASS_WEIGHTINGS


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ints(value) -> bool:
    return isinstance(value, (tuple, list)) and all(_is_int(v) for v in value)


def _names(choices, empty: str = "''") -> str:
    """`choices` as "a, b, c"; the empty string is shown as `empty`."""
    return ", ".join(empty if c == "" else str(c) for c in choices)


def _one_of(key, value, choices, what, empty: str = "''") -> str | None:
    """A problem line when `value` is not in `choices` (with the closest name as a hint)."""
    if value in choices:
        return None
    close = []
    if isinstance(value, str) and value:
        names = [c for c in choices if isinstance(c, str) and c]
        close = [c for c in names if value in c]  # "float16" -> "mixed_float16"
        close = close if len(close) == 1 else difflib.get_close_matches(value, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{key}={value!r}: not {what}{hint}; allowed: {_names(choices, empty)}"


def _output_stride_problem(key, value, arch) -> str | None:
    strides = output_strides(arch)
    if not strides or value in strides:
        return None  # an unknown arch is reported once, as model.arch
    return f"{key}={value!r}: {arch} does not build at this output stride; allowed: {_names(strides)}"


def _training_problems(experiment: Experiment) -> list[str]:
    """Returns the problems only training has, one line each ([] for none): `model.atrous_implementation`
    "native" where the model has full atrous convolutions (any DeepLab v2, a v3/v3+ ASPP that is
    not separable; a separable v3+ on a backbone dilating full convolutions, a ResNet below output
    stride 32, is not detected) and this machine's TensorFlow kernels lack their gradients in the
    compute type of `train.mixed_precision` (`atrous_auto.native_has_dilated_gradients`, a probe
    on a 6x6 map, no model; they lack them in float64 on every CPU, in float16 without AVX512-FP16
    or AMX-FP16, in every type without oneDNN). Evaluation and export compute no gradients. An
    unresolved "auto" precision is not checked."""
    m, precision = experiment.model, experiment.train.mixed_precision
    if m.atrous_implementation != "native" or precision not in PRECISIONS or precision == "auto":
        return []
    if m.arch != "deeplab_v2" and m.separable:
        return []
    dtype = keras.DTypePolicy(precision or "float32").compute_dtype
    if atrous_auto.native_has_dilated_gradients(dtype):
        return []
    others = [name for name in ATROUS_IMPLEMENTATIONS
              if name == "auto" or name != "native" and atrous_auto.can_run(name, False, dtype, 2, True)]
    return [f"model.atrous_implementation='native' with train.mixed_precision={precision!r}: this machine's "
            f"TensorFlow has no {dtype} gradient of a dilated convolution, which training needs; allowed: "
            f"{_names(others)}, or another train.mixed_precision"]


def _problems(experiment: Experiment) -> list[str]:
    """Returns one line per invalid value of `experiment` (see `validate`)."""
    problems = []

    def check(ok, key, value, why, allowed):
        if not ok:
            problems.append(f"{key}={value!r}: {why}; allowed: {allowed}")

    def choice(key, value, choices, what, empty="''"):
        problem = _one_of(key, value, choices, what, empty)
        problems.extend([problem] if problem else [])

    def at_least(key, value, low, what):
        check(_is_int(value) and value >= low, key, value, f"{what} must be at least {low}",
              f"integers >= {low}")

    m, d, t, e = experiment.model, experiment.data, experiment.train, experiment.eval

    # model
    choice("model.arch", m.arch, ARCHITECTURES, "a known architecture")
    choice("model.backbone", m.backbone, _backbone_names(), "a known backbone")
    if not (_is_number(m.backbone_alpha) and m.backbone_alpha > 0):
        check(False, "model.backbone_alpha", m.backbone_alpha, "the width multiplier must be positive", "numbers > 0")
    elif m.backbone in _backbone_names() and m.backbone_alpha != 1.0 and not _has_width_multiplier(m.backbone):
        check(False, "model.backbone_alpha", m.backbone_alpha, f"backbone {m.backbone!r} has no width multiplier",
              f"1.0 (width multipliers exist for {_names(_width_multiplier_backbones())})")
    choice("model.backbone_padding", m.backbone_padding, backbones.PADDINGS, "a backbone padding")
    if m.backbone_padding == "tf_same" and m.backbone in _backbone_names():
        check(m.backbone in _keras_application_backbones(), "model.backbone_padding", m.backbone_padding,
              f"backbone {m.backbone!r} pads as published already",
              f"'keras' ('tf_same' for {_names(_keras_application_backbones())})")
    divisor = m.backbone_channel_divisor
    if not (_is_int(divisor) and divisor >= 1):
        at_least("model.backbone_channel_divisor", divisor, 1, "the channel divisor")
    elif divisor != 8 and m.backbone in _backbone_names():
        check(_has_width_multiplier(m.backbone), "model.backbone_channel_divisor", divisor,
              f"backbone {m.backbone!r} has no width multiplier to round",
              f"8 (other divisors for {_names(_width_multiplier_backbones())})")
        check(not m.backbone_weights, "model.backbone_channel_divisor", divisor,
              f"ImageNet weights exist only for Keras' widths (model.backbone_weights={m.backbone_weights!r})",
              "8, or model.backbone_weights=''")
    problem = _output_stride_problem("model.output_stride", m.output_stride, m.arch)
    problems.extend([problem] if problem else [])
    rates = m.atrous_rates
    positive_rates = _ints(rates) and all(r >= 1 for r in rates)
    if m.arch == "deeplab_v2":
        check(positive_rates and len(rates) >= 1 and len(set(rates)) == len(rates), "model.atrous_rates", rates,
              "DeepLab v2 needs one distinct rate per branch",
              "a non-empty tuple of distinct positive integers, e.g. (12,) or (6, 12, 18, 24)")
        choice("model.head", m.head, HEADS, "a DeepLab v2 head")
        check(not m.multi_grid, "model.multi_grid", m.multi_grid, "DeepLab v2 has no multi-grid (only v3/v3+)", "()")
        check(m.aspp_image_pooling is True, "model.aspp_image_pooling", m.aspp_image_pooling,
              "DeepLab v2 has no image pooling to drop (only v3/v3+)", "True")
        check(m.align_corners is False, "model.align_corners", m.align_corners,
              "DeepLab v2 resizes as Keras (align corners only for v3/v3+)", "False")
        check(m.backbone_padding == "keras", "model.backbone_padding", m.backbone_padding,
              "DeepLab v2 builds Keras' padding (TF1 options only for v3/v3+)", "'keras'")
        check(m.backbone_channel_divisor == 8, "model.backbone_channel_divisor", m.backbone_channel_divisor,
              "DeepLab v2 builds Keras' widths (TF1 options only for v3/v3+)", "8")
    else:
        check(positive_rates and len(set(rates)) == len(rates), "model.atrous_rates", rates,
              "ASPP rates must be distinct positive integers",
              "a tuple of distinct positive integers, e.g. (6, 12, 18)")
        if m.multi_grid and m.backbone in _backbone_names():
            units = _multi_grid_units(m.backbone)
            if not units:
                grid = [n for n in _backbone_names() if _multi_grid_units(n)]
                check(False, "model.multi_grid", m.multi_grid, f"backbone {m.backbone!r} has no multi-grid",
                      f"() (multi-grid backbones: {_names(grid)})")
            else:
                check(_ints(m.multi_grid) and len(m.multi_grid) == units and all(g >= 1 for g in m.multi_grid),
                      "model.multi_grid", m.multi_grid,
                      f"one rate multiplier per unit of the last block of {m.backbone!r}",
                      f"() or {units} positive integers, e.g. (1, 2, 4)")
    for name in ("aspp_filters", "low_level_filters", "decoder_filters", "fc_channels", "fc_kernel_size"):
        at_least(f"model.{name}", getattr(m, name), 1, name.replace("_", " "))
    check(_is_number(m.dropout_rate) and 0 <= m.dropout_rate < 1, "model.dropout_rate", m.dropout_rate,
          "a dropout rate is a fraction", "0 <= rate < 1")
    scales = m.msc_scales
    check(not scales or (len(set(scales)) == len(scales) >= 2 and all(_is_number(s) and s > 0 for s in scales)),
          "model.msc_scales", scales, "multi-scale inputs need at least two distinct positive scales",
          "() (off) or >= 2 distinct numbers > 0, e.g. (0.5, 0.75, 1.0)")
    choice("model.atrous_implementation", m.atrous_implementation, ATROUS_IMPLEMENTATIONS, "an atrous implementation")
    check(_is_number(m.batch_norm_momentum) and 0 <= m.batch_norm_momentum <= 1, "model.batch_norm_momentum",
          m.batch_norm_momentum, "a moving-average momentum is a fraction", "0 <= momentum <= 1")

    # data
    choice("data.dataset", d.dataset, _dataset_names(), "a known dataset")
    check(_ints(d.crop_size) and len(d.crop_size) == 2 and all(s >= 1 for s in d.crop_size), "data.crop_size",
          d.crop_size, "the crop is (height, width) in pixels", "two integers >= 1, e.g. (513, 513)")
    check(_is_number(d.min_scale) and d.min_scale > 0, "data.min_scale", d.min_scale,
          "the smallest random scale must be positive", "numbers > 0")
    if _is_number(d.min_scale) and d.min_scale > 0:
        check(_is_number(d.max_scale) and d.max_scale >= d.min_scale, "data.max_scale", d.max_scale,
              f"must not be below data.min_scale={d.min_scale!r}", f"numbers >= {d.min_scale!r}")
    at_least("data.shuffle_buffer", d.shuffle_buffer, 0, "the shuffle buffer (0 or 1 = no shuffling)")
    at_least("data.max_examples", d.max_examples, 0, "the example limit (0 = all)")
    for name in ("train_split", "eval_split"):
        check(isinstance(getattr(d, name), str) and getattr(d, name), f"data.{name}", getattr(d, name),
              "a split must be named", "a split name of the dataset, e.g. 'train'")

    # train
    precisions, class_weightings = _training_choices()
    at_least("train.steps", t.steps, 1, "the number of training steps")
    at_least("train.batch_size", t.batch_size, 1, "the batch size")
    # 0 is allowed: a run that updates nothing but batch norm's statistics (the trainer's tests use it).
    check(_is_number(t.base_learning_rate) and t.base_learning_rate >= 0, "train.base_learning_rate",
          t.base_learning_rate, "a learning rate must not be negative", "numbers >= 0")
    choice("train.learning_rate_schedule", t.learning_rate_schedule, SCHEDULES, "a learning-rate schedule")
    check(_is_number(t.poly_power) and t.poly_power >= 0, "train.poly_power", t.poly_power,
          "a negative power makes the learning rate grow", "numbers >= 0")
    at_least("train.step_size", t.step_size, 1, "the steps between learning-rate drops")
    check(_is_number(t.step_gamma) and 0 < t.step_gamma <= 1, "train.step_gamma", t.step_gamma,
          "the factor applied every step_size", "0 < gamma <= 1")
    if _is_int(t.steps) and t.steps >= 1:
        check(_is_int(t.warmup_steps) and 0 <= t.warmup_steps < t.steps, "train.warmup_steps", t.warmup_steps,
              f"the warm-up must end before train.steps={t.steps}", f"integers 0..{t.steps - 1}")
    else:
        at_least("train.warmup_steps", t.warmup_steps, 0, "the warm-up length")
    check(_is_number(t.momentum) and 0 <= t.momentum <= 1, "train.momentum", t.momentum,
          "SGD momentum is a fraction", "0 <= momentum <= 1")
    check(_is_number(t.weight_decay) and t.weight_decay >= 0, "train.weight_decay", t.weight_decay,
          "the L2 weight decay must not be negative", "numbers >= 0")
    at_least("train.checkpoint_every", t.checkpoint_every, 1, "the checkpoint interval")
    at_least("train.log_every", t.log_every, 1, "the logging interval")
    check(_is_int(t.seed) and 0 <= t.seed < 2**32, "train.seed", t.seed, "a random seed is a 32-bit unsigned integer",
          f"integers 0..{2**32 - 1}")
    choice("train.mixed_precision", t.mixed_precision, precisions, "a known precision", empty="'' (float32)")
    choice("train.class_weighting", t.class_weighting, class_weightings, "a known class weighting", empty="'' (none)")
    check(_is_number(t.classifier_learning_rate_multiplier) and t.classifier_learning_rate_multiplier >= 0,
          "train.classifier_learning_rate_multiplier", t.classifier_learning_rate_multiplier,
          "the classifier's learning-rate factor must not be negative", "numbers >= 0 (0 freezes the classifier)")

    # eval
    at_least("eval.batch_size", e.batch_size, 1, "the evaluation batch size")
    if e.output_stride != 0:
        problem = _output_stride_problem("eval.output_stride", e.output_stride, m.arch)
        problems.extend([problem] if problem else [])
    check(bool(e.scales) and all(_is_number(s) and s > 0 for s in e.scales), "eval.scales", e.scales,
          "test-time scales must be positive", "a non-empty tuple of numbers > 0, e.g. (0.75, 1.0, 1.25)")
    choice("eval.fusion", e.fusion, FUSIONS, "a fusion of the test-time passes")
    tile_ok = _ints(e.tile_size) and len(e.tile_size) == 2 and (tuple(e.tile_size) == (0, 0) or min(e.tile_size) >= 1)
    check(tile_ok, "eval.tile_size", e.tile_size, "windows are (height, width) in pixels",
          "(0, 0) (whole images) or two integers >= 1, e.g. (513, 513)")
    at_least("eval.tile_overlap", e.tile_overlap, 0, "the window overlap")
    stride = e.output_stride or m.output_stride
    if tile_ok and tuple(e.tile_size) != (0, 0) and _is_int(e.tile_overlap) and stride in output_strides(m.arch):
        window = min(e.tile_size) // stride * stride  # `evaluation.inference.tiled` rounds windows to the stride
        if window < 1:
            check(False, "eval.tile_size", e.tile_size, f"windows smaller than the output stride {stride}",
                  f"(0, 0) or sides >= {stride}")
        else:
            check(e.tile_overlap < window, "eval.tile_overlap", e.tile_overlap,
                  f"must be smaller than the window eval.tile_size={tuple(e.tile_size)} rounded down to a multiple "
                  f"of the output stride {stride} ({window})", f"integers 0..{window - 1}")
    check(_ints(e.pad_to_size) and len(e.pad_to_size) == 2 and (tuple(e.pad_to_size) == (0, 0) or min(e.pad_to_size) >= 1),
          "eval.pad_to_size", e.pad_to_size, "images are padded to (height, width) pixels",
          "(0, 0) (no padding) or two integers >= 1, e.g. (513, 513)")
    check(isinstance(e.pad_value, (tuple, list)) and len(e.pad_value) == 3
          and all(_is_number(v) and 0 <= v <= 255 for v in e.pad_value), "eval.pad_value", e.pad_value,
          "the pad colour is one RGB pixel", "three numbers 0..255, e.g. (127.5, 127.5, 127.5)")
    check(_ints(e.trimap_widths) and all(w >= 1 for w in e.trimap_widths), "eval.trimap_widths", e.trimap_widths,
          "boundary band widths are positive pixel counts", "() (off) or integers >= 1, e.g. (1, 2, ..., 40)")
    return problems
