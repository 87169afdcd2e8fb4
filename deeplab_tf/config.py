"""Experiment configuration: small frozen dataclasses, at most two levels deep.

An `Experiment` holds four sections (`model`, `data`, `train`, `eval`). Named experiments live in
`experiments/` and derive variants with `dataclasses.replace`. Command-line overrides such as
`train.steps=200,data.crop_size=321` are applied with `apply_overrides`, which parses each value
by the type of the field it replaces and refuses fields that do not exist.
"""

import ast
import dataclasses
import difflib
import json

# Allowed values of the fields with a closed set that no registry owns (checked by
# `deeplab_tf.validation.validate`; the modules that act on them import them from here).
PRECISIONS = ("", "mixed_float16", "mixed_bfloat16", "float64", "auto")  # train.mixed_precision
CLASS_WEIGHTINGS = ("", "median_frequency")  # train.class_weighting
SCHEDULES = ("poly", "step")  # train.learning_rate_schedule
FUSIONS = ("mean", "max")  # eval.fusion
# Fields that choose how, not what, a model computes (the same weights, the same values to
# rounding): a run may resume, be evaluated or be exported under other values of them.
SPEED_CHOICE_FIELDS = ("model.atrous_implementation", "model.fused_batch_norm")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Network architecture.

    `arch`: "deeplab_v2" (v1/v2: summed atrous branches, `head` "fc" on VGG-16 or
    "classifier" on ResNet), "deeplab_v3" (ASPP with image pooling) or "deeplab_v3_plus"
    (v3 + decoder). `backbone`: a name from `deeplab_tf.backbones`; `backbone_weights`: a local
    ImageNet weight file or "" (for VGG-16 the Keras file with the top also initialises the "fc"
    head's fc6/fc7 from fc1/fc2, decimated as DeepLab did). `atrous_rates`: for v3/v3+ the ASPP rates at output stride 16
    (doubled at 8); for v2 the branch rates as used (at output stride 8).
    `atrous_implementation`: a name from `deeplab_tf.layers.ATROUS_IMPLEMENTATIONS`.
    `multi_grid`: v3 unit rates of the last block, e.g. (1, 2, 4); () = none.
    `separable`: v3+ ASPP and decoder with atrous separable convolutions.
    `msc_scales`: v2 multi-scale inputs fused by per-pixel max, e.g. (0.5, 0.75, 1.0); () = off.
    `fused_batch_norm`: batch norm layers computed by TensorFlow's fused kernel
    (`deeplab_tf.layers.fused_batch_norm`: same weights, results equal to float32 rounding, a
    14% faster ResNet-50 training step, BENCHMARKS.md); False keeps Keras' ops. With oneDNN
    (TF's default on x86) grappler fuses it with a following ReLU into one kernel that outputs
    0 for NaN, so a NaN batch can leave the loss finite; its moving statistics still take the
    NaN, and the trainer stops on those as on a NaN loss.
    TF1 conventions of the official DeepLab graphs (tensorflow/models `research/deeplab`), for
    v3/v3+ (`experiments/official.py` sets them; the defaults keep the Keras conventions):
    `align_corners`: every bilinear resize of the model (ASPP image pooling, decoder upsampling,
    logits upsampling) samples as TF1's `resize_bilinear(align_corners=True)`.
    `aspp_image_pooling`: False drops ASPP's image-pooling branch.
    `backbone_padding`: "keras" (Keras Applications' explicit padding before strided convs,
    (0, 1) at unknown sizes) or "tf_same" (TF's run-time "SAME", as TF1 slim: (1, 1) at odd
    sizes; Keras Applications backbones, `deeplab_tf.backbones.tf_same_padding`). Xception-65
    takes "keras" only: its strided convs always pad as the official `xception.py`'s
    `fixed_padding` ((1, 1) at every size, then "VALID"), which is already the TF1 convention.
    `backbone_channel_divisor`: MobileNetV2 widths `base * backbone_alpha` rounded to multiples
    of this (slim's `divisible_by`); 8 is Keras Applications' model, the official depth 0.5
    uses 1 (random init: no ImageNet file has those widths).
    """

    arch: str = "deeplab_v3_plus"
    backbone: str = "mobilenet_v2"
    backbone_alpha: float = 1.0
    backbone_weights: str = ""
    output_stride: int = 16
    atrous_rates: tuple = (6, 12, 18)
    multi_grid: tuple = ()
    aspp_filters: int = 256
    low_level_filters: int = 48
    decoder_filters: int = 256
    separable: bool = False
    head: str = "fc"
    fc_kernel_size: int = 3
    fc_channels: int = 1024
    dropout_rate: float = 0.5
    pool5a: bool = False
    msc_scales: tuple = ()
    atrous_implementation: str = "auto"
    batch_norm_momentum: float = 0.99
    fused_batch_norm: bool = True
    align_corners: bool = False
    aspp_image_pooling: bool = True
    backbone_padding: str = "keras"
    backbone_channel_divisor: int = 8


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where examples come from and how training crops are augmented.

    `dataset`: a source name (`deeplab_tf.data.SOURCES` or `TFDS_SOURCES`). `data_dir`: the
    folder of a file-based source, or the TFDS manual dir holding the upstream files.
    `tfds_data_dir`: where TFDS keeps prepared records ("" = $TFDS_DATA_DIR, else
    ~/tensorflow_datasets). `max_examples` > 0 reads only the first N examples of a split.
    """

    dataset: str = "synthetic_shapes"
    data_dir: str = ""
    tfds_data_dir: str = ""
    train_split: str = "train"
    eval_split: str = "val"
    crop_size: tuple = (321, 321)
    min_scale: float = 0.5
    max_scale: float = 2.0
    random_flip: bool = True
    shuffle_buffer: int = 512
    max_examples: int = 0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe: SGD with momentum, a learning-rate schedule, L2 weight decay.

    `init_checkpoint`: a checkpoint whose weights initialise the model (e.g. a COCO-trained
    DeepLab). `init_from`: what the paper initialised from when that was not ImageNet; an
    experiment that sets it refuses to train until `init_checkpoint` is given.
    `train_batch_norm` False freezes batch norm (DeepLab v2).
    `mixed_precision`: "" (float32), "mixed_float16" (with loss scaling), "mixed_bfloat16",
    "float64" (variables and computation in float64: slow, for numerical checks such as the
    multi-device parity test), or "auto": "mixed_bfloat16" on a CPU with native bfloat16 units
    (`deeplab_tf.cpu.native_bfloat16`), else "" (float32), and "" under `deterministic`; the
    trainer resolves it once, when a run starts (a resumed run keeps what its config.json
    records), logs why and writes the resolved value to config.json;
    the loss is always computed in float32. `jit_compile` compiles the step with XLA.
    `deterministic` enables TensorFlow op determinism: the same seed gives the same weights.
    `learning_rate_schedule`: "poly" (DeepLab v2: base * (1 - step / steps) ** `poly_power`) or
    "step" (Caffe's step policy, DeepLab v1: base * `step_gamma` ** floor(step / `step_size`),
    e.g. 0.1 every 2000 steps); see `deeplab_tf.training.schedules`.
    `warmup_steps`: linear learning-rate warm-up at the start of either schedule (0 = none).
    `class_weighting`: "" (every labelled pixel weighs 1) or "median_frequency" (per-class loss
    weights computed from the training split's labels, `deeplab_tf.data.class_weights`).
    `classifier_learning_rate_multiplier`: the learning rate of the final classifier layers
    (layers named `logits*`) relative to the rest, e.g. 10 as DeepLab v2's fc8.
    """

    steps: int = 1000
    batch_size: int = 8
    base_learning_rate: float = 0.007
    learning_rate_schedule: str = "poly"
    poly_power: float = 0.9
    step_size: int = 2000
    step_gamma: float = 0.1
    warmup_steps: int = 0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    train_batch_norm: bool = True
    init_checkpoint: str = ""
    init_from: str = ""
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    mixed_precision: str = ""
    jit_compile: bool = False
    deterministic: bool = False
    class_weighting: str = ""
    classifier_learning_rate_multiplier: float = 1.0


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol (see `deeplab_tf.evaluation.inference` and `deeplab_tf.evaluation.trimap`).

    `output_stride` 0 evaluates at the training output stride; `crf` applies the fully connected
    CRF to the probabilities. `scales`: input scales of test-time augmentation, e.g.
    (0.5, 0.75, 1.0, 1.25, 1.5, 1.75); `flip` adds left-right flipped passes; `fusion` "mean"
    averages the passes' probabilities (v3/v3+), "max" takes their per-pixel maximum (v2 MSC).
    `tile_size` (height, width) > 0 predicts images larger than it with overlapping windows of
    that size, `tile_overlap` pixels apart from a full step; (0, 0) = whole images.
    `trimap_widths`: band widths (pixels) around ground-truth boundaries for boundary accuracy
    (DeepLab v2 Fig. 10); () = off.
    `pad_to_size` (height, width) > 0 pads each image bottom/right with the pixel `pad_value`
    (RGB, 0..255) to at least that size before the network and crops the probabilities back
    (`deeplab_tf.evaluation.inference.padded`): the official DeepLab graphs' 513 crop with mean
    padding (`mean_pixel` 127.5 for MobileNetV2 and Xception-65); (0, 0) = off.
    """

    batch_size: int = 1
    output_stride: int = 0
    crf: bool = False
    scales: tuple = (1.0,)
    flip: bool = False
    fusion: str = "mean"
    tile_size: tuple = (0, 0)
    tile_overlap: int = 128
    trimap_widths: tuple = tuple(range(1, 41))
    pad_to_size: tuple = (0, 0)
    pad_value: tuple = (127.5, 127.5, 127.5)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A complete, named recipe: what `train`, `evaluate` and `export` all build from."""

    name: str
    description: str = ""
    paper_miou: float = 0.0
    paper_source: str = ""
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def to_dict(self) -> dict:
        """Returns the experiment as JSON-compatible nested dicts (tuples become lists)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Returns the experiment as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


SECTIONS = ("model", "data", "train", "eval")


def from_dict(values: dict) -> Experiment:
    """Builds an `Experiment` from `to_dict()` output; lists become tuples where fields are tuples.

    Raises ValueError naming what does not fit: `values` or a section that is not a dict, a
    missing or non-text name, an unknown key or field, or a value of another type than its field's.
    """
    top = _fields(values, "the config", Experiment)
    if not isinstance(values.get("name"), str):
        raise ValueError(f"the config has no experiment name (a text 'name'), got {values.get('name')!r}")
    sections = {}
    for section in SECTIONS:
        cls = type(getattr(Experiment(name=""), section))
        content = values.get(section, {})
        fields = _fields(content, section, cls)
        sections[section] = cls(**{k: _coerce(v, fields[k], f"{section}.{k}") for k, v in content.items()})
    described = {k: _coerce(v, top[k], k) for k, v in values.items() if k not in SECTIONS + ("name",)}
    return Experiment(name=values["name"], **described, **sections)


def _fields(values, what: str, cls) -> dict:
    """Returns {name: dataclasses.Field} of dataclass `cls` after checking that `values` (`what`
    of a config) is a dict of only those names. Raises ValueError naming `what` otherwise."""
    if not isinstance(values, dict):
        raise ValueError(f"{what} is a {type(values).__name__}, not an object of {cls.__name__} fields")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{what} has unknown fields {unknown}; known: {sorted(fields)}")
    return fields


def from_file(path: str) -> Experiment:
    """Returns the experiment recorded in the JSON file `path` (a run's config.json, `to_json`'s
    text). Raises OSError when it cannot be opened, and ValueError naming `path` when it is not
    JSON or not an experiment (`from_dict`), e.g. another program's config.json."""
    try:
        with open(path) as f:
            return from_dict(json.load(f))
    except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path} does not hold a deeplab-tf experiment config ({error})") from None


def apply_overrides(experiment: Experiment, overrides: str | list[str]) -> Experiment:
    """Returns `experiment` with `section.field=value` overrides applied.

    `overrides` is a comma-separated string or a list of such strings. A comma inside
    parentheses or brackets belongs to the value (`data.crop_size=(257,257)`); a bare
    `data.crop_size=321` sets both sides of a pair field. Raises ValueError naming an unknown
    section or field (with the known ones) or a value that does not parse as the field's type.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in (part for text in overrides for part in _split_top_level(text)):
        if "=" not in item:
            raise ValueError(f"Override {item!r} is not of the form section.field=value")
        key, text = (s.strip() for s in item.split("=", 1))
        section, _, field_name = key.partition(".")
        if section not in SECTIONS or not field_name:
            raise ValueError(f"Override {key!r}: the key must be one of {SECTIONS} followed by .field")
        current = getattr(experiment, section)
        fields = {f.name: f for f in dataclasses.fields(current)}
        if field_name not in fields:
            close = difflib.get_close_matches(field_name, fields, n=1)
            hint = f" Did you mean {section}.{close[0]}?" if close else ""
            raise ValueError(
                f"Override {key!r}: {section} has no field {field_name!r}.{hint} "
                f"Known {section} fields: {', '.join(sorted(fields))}"
            )
        value = _coerce(_parse_literal(text), fields[field_name], key)
        experiment = dataclasses.replace(
            experiment, **{section: dataclasses.replace(current, **{field_name: value})}
        )
    return experiment


def _split_top_level(text: str) -> list[str]:
    """Splits on commas that are not inside (), [] or quotes; drops empty parts."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_literal(text: str):
    """Returns the Python literal in `text`, or `text` itself when it is a bare word."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _coerce(value, field: dataclasses.Field, key: str):
    """Returns `value` converted to the type of `field`; ValueError naming `key` if it cannot be."""
    default = field.default
    expected = type(default)
    try:
        if isinstance(default, tuple):
            items = tuple(value) if isinstance(value, (list, tuple)) else None
            if items is None:
                # A single value for a size pair means a square (crop_size=321 -> (321, 321)).
                items = (value,) * (len(default) if key.endswith("_size") else 1)
            sample = default or items
            element_type = float if any(isinstance(v, float) for v in sample) else type(sample[0]) if sample else str
            return tuple(_scalar(v, element_type) for v in items)
        return _scalar(value, expected)
    except (TypeError, ValueError, OverflowError) as error:  # OverflowError: an int too large for a float
        raise ValueError(f"{key}={value!r} does not fit the field's type ({error})") from None


def _scalar(value, expected: type):
    """Returns `value` as `expected` (bool, int, float or str) without silent truncation."""
    if expected is bool:
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not float(value).is_integer():
            raise TypeError("expected an integer")
        return int(value)
    if expected is float:
        if isinstance(value, bool):
            raise TypeError("expected a number")
        return float(value)
    if expected is str:
        return str(value)
    raise TypeError(f"unsupported field type {expected.__name__}")


def derive(experiment: Experiment, **changes) -> Experiment:
    """Returns a variant of `experiment`: a section name maps to a dict of that section's fields
    to replace (`model=dict(output_stride=8)`), any other key replaces a top-level field
    (`paper_miou=71.57`). Unknown fields raise TypeError, as `dataclasses.replace` does."""
    values = {
        key: dataclasses.replace(getattr(experiment, key), **value) if key in SECTIONS else value
        for key, value in changes.items()
    }
    return dataclasses.replace(experiment, **values)
