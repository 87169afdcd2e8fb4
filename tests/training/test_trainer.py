"""Training loop: resumes from the latest checkpoint, never restarts or mixes configs."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.config import apply_overrides
from deeplab_tf.training.trainer import train
from experiments import get_experiment

TINY = (
    "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
    "data.crop_size=64,data.max_examples=16,train.batch_size=2,train.log_every=1,train.checkpoint_every=2,"
    "train.warmup_steps=0"
)


def tiny_demo(steps=4):
    return apply_overrides(get_experiment("demo"), [TINY, f"train.steps={steps}"])


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_latest_checkpoint(tmp_path):
    experiment, lines = tiny_demo(), []

    def log_then_interrupt(line):
        lines.append(line)
        if line.startswith("step 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(experiment, str(tmp_path), log=log_then_interrupt)
    assert json.load(open(tmp_path / "config.json"))["train"]["steps"] == 4

    lines.clear()
    result = train(experiment, str(tmp_path), log=lines.append)
    assert any("at step 2" in line for line in lines if line.startswith("Resumed")), lines
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["3/4", "4/4"]
    assert result["step"] == 4 and result["checkpoint"].endswith("ckpt-4")

    lines.clear()
    assert train(experiment, str(tmp_path), log=lines.append)["step"] == 4
    assert any("already complete" in line for line in lines)
    assert any(name.startswith("events") for name in os.listdir(tmp_path / "train"))


def test_a_run_resumes_under_other_speed_choices(tmp_path):
    """The atrous implementation and the batch norm kernel choose how, not what, a step computes
    (the same weights): a run started under some resumes under others, and config.json then
    records the new ones."""
    started = apply_overrides(tiny_demo(), "model.atrous_implementation=space_to_batch,model.fused_batch_norm=false")

    def interrupt_at_step_3(line):
        if line.startswith("step 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(started, str(tmp_path), log=interrupt_at_step_3)
    lines = []
    assert train(tiny_demo(), str(tmp_path), log=lines.append)["step"] == 4
    assert any("at step 2" in line for line in lines if line.startswith("Resumed")), lines
    model = json.load(open(tmp_path / "config.json"))["model"]
    assert (model["atrous_implementation"], model["fused_batch_norm"]) == ("auto", True)


def test_model_dir_of_another_config_is_refused(tmp_path):
    train(tiny_demo(steps=1), str(tmp_path), log=lambda line: None)
    with pytest.raises(ValueError, match=r"different config.*train.steps: saved 1, now 2"):
        train(tiny_demo(steps=2), str(tmp_path), log=lambda line: None)


@pytest.mark.parametrize("content", ['[1]', '{}', '{"architectures": ["BertModel"], "model": "bert"}'])
def test_another_programs_config_json_is_refused_naming_it_and_kept(tmp_path, content):
    """A --model_dir holding another program's config.json (e.g. `--model_dir=.` in a project)."""
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'config.json'} does not hold a deeplab-tf experiment config"):
        train(tiny_demo(steps=1), str(tmp_path), log=lambda line: None)
    assert (tmp_path / "config.json").read_text() == content
    assert not (tmp_path / "checkpoints").exists()


def test_a_training_that_stopped_before_its_first_checkpoint_does_not_bind_its_config(tmp_path):
    """The fixed rerun of a training that failed (here: a typo in train.init_checkpoint) is not
    refused as a run of another config: no checkpoint of that config exists."""
    typo = apply_overrides(tiny_demo(steps=1), f"train.init_checkpoint={tmp_path / 'no_such_run'}")
    with pytest.raises(FileNotFoundError, match="no_such_run"):
        train(typo, str(tmp_path / "run"), log=lambda line: None)
    assert train(tiny_demo(steps=1), str(tmp_path / "run"), log=lambda line: None)["step"] == 1
    assert (tmp_path / "run" / "config.json").read_text() == tiny_demo(steps=1).to_json()


@pytest.mark.parametrize("fused_batch_norm", [False, True], ids=["keras_bn", "fused_bn"])
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, fused_batch_norm):
    """With the fused batch norm the NaN batch's loss can stay finite (grappler's batch norm +
    ReLU kernel outputs 0 for NaN); its moving statistics do not, and stop the run too."""
    import numpy as np
    import tensorflow as tf

    from deeplab_tf.training import distribute

    build = distribute.build_train_dataset

    def nan_in_third_batch(*args, **kwargs):
        poison = lambda i, batch: (tf.where(i == 2, float("nan"), batch[0]), batch[1])
        return build(*args, **kwargs).enumerate().map(poison)

    monkeypatch.setattr(distribute, "build_train_dataset", nan_in_third_batch)
    experiment = apply_overrides(tiny_demo(steps=4), f"model.fused_batch_norm={fused_batch_norm}")
    with pytest.raises(FloatingPointError, match=r"(Loss is nan|Batch norm moving statistics are not finite) "
                                                 r"at step 3; .*ckpt-2 \(not overwritten\)"):
        train(experiment, str(tmp_path), log=lambda line: None)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-2")
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-2"))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        assert isinstance(value, bytes) or np.all(np.isfinite(value)), name


def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path):
    experiment = tiny_demo(steps=4)
    train(experiment, str(tmp_path), log=lambda line: None)
    folder = tmp_path / "checkpoints"
    # An unfinished save (files but no entry in the state file) is never taken as the latest.
    (folder / "ckpt-6.index").write_bytes(b"partial")
    (folder / "ckpt-6.data-00000-of-00001").write_bytes(b"partial")
    data = next(folder.glob("ckpt-4.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated after the save

    lines = []
    result = train(experiment, str(tmp_path), log=lines.append)
    assert any("ckpt-4 is unreadable" in line for line in lines), lines
    assert any(line.startswith("Resumed from") and line.endswith("ckpt-2 at step 2") for line in lines), lines
    assert result["step"] == 4 and result["checkpoint"].endswith("ckpt-4")

    for prefix in ("ckpt-2", "ckpt-4"):
        data = next(folder.glob(f"{prefix}.data-*"))
        data.write_bytes(b"\0" * data.stat().st_size)  # overwritten: checksums fail
    with pytest.raises(ValueError, match="No checkpoint in .* is readable"):
        train(experiment, str(tmp_path), log=lambda line: None)


def test_mixed_float16_counts_every_step(tmp_path):
    """Loss-scaled float16 steps skipped for overflow still count (the optimizer's own count does
    not advance on them), so the step, the checkpoint number and the input stay in line.
    Most CPUs' kernels lack float16 dilated-convolution gradients (tests/cpu_capabilities.py):
    the default atrous implementation (`auto`) never uses them in float16."""
    experiment = apply_overrides(tiny_demo(steps=2), "train.mixed_precision=mixed_float16,data.crop_size=32")
    lines = []
    result = train(experiment, str(tmp_path), log=lines.append)
    assert "mixed_float16" in lines[0] and result["step"] == 2 and result["checkpoint"].endswith("ckpt-2")
    lines.clear()
    assert train(experiment, str(tmp_path), log=lines.append)["step"] == 2
    assert any("already complete: step 2" in line for line in lines), lines


def test_mixed_bfloat16_trains_with_float32_variables(tmp_path):
    experiment = apply_overrides(tiny_demo(steps=2), "train.mixed_precision=mixed_bfloat16,data.crop_size=32")
    lines = []
    result = train(experiment, str(tmp_path), log=lines.append)
    assert "mixed_bfloat16" in lines[0] and result["step"] == 2
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines if line.startswith("step ")]
    assert len(losses) == 2 and all(np.isfinite(losses)), lines
    reader = tf.train.load_checkpoint(result["checkpoint"])
    kernels = [name for name in reader.get_variable_to_dtype_map() if name.endswith("kernel/.ATTRIBUTES/VARIABLE_VALUE")]
    assert kernels and all(reader.get_variable_to_dtype_map()[name] == tf.float32 for name in kernels)


@pytest.mark.parametrize("jit_compile, precision", [(False, ""), (True, ""), (True, "mixed_bfloat16")])
def test_speed_choices_are_tuned_for_the_step_as_it_is_compiled(jit_compile, precision, tmp_path, cache_file, timed):
    """With tuning on, the trainer's step picks its speed choices under keys ending in "xla"
    exactly when it is compiled by XLA (`train.jit_compile`), so they are timed that way too; in
    bfloat16 too (whose XLA step did not compile before the resize took float32 maps)."""
    experiment = apply_overrides(tiny_demo(steps=1), f"data.crop_size=32,train.jit_compile={str(jit_compile).lower()},"
                                                     f"train.mixed_precision={precision}")
    assert train(experiment, str(tmp_path / "run"), log=lambda line: None)["step"] == 1
    keys = list(json.loads(cache_file.read_text())["choices"])
    assert timed and keys
    assert [key for key in keys if key.endswith(" xla") != jit_compile] == []


def _weights_after_one_step(model_dir, *overrides):
    experiment = apply_overrides(tiny_demo(steps=1), ["train.deterministic=true,train.momentum=0.0", *overrides])
    result = train(experiment, str(model_dir), log=lambda line: None)
    reader = tf.train.load_checkpoint(result["checkpoint"])
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map() if key.startswith("model_weights")}


def test_classifier_multiplier_scales_only_the_classifier_update(tmp_path):
    initial = _weights_after_one_step(tmp_path / "zero", "train.base_learning_rate=0.0")
    plain = _weights_after_one_step(tmp_path / "plain")
    boosted = _weights_after_one_step(tmp_path / "boosted", "train.classifier_learning_rate_multiplier=10")
    classifier = [key for key in initial if "/logits/" in key or key.startswith("model_weights/logits")]
    assert classifier, sorted(initial)[:5]
    changed = 0
    for key in initial:
        if initial[key].dtype.kind != "f":
            continue
        step_plain, step_boosted = plain[key] - initial[key], boosted[key] - initial[key]
        if key in classifier:
            np.testing.assert_allclose(step_boosted, 10 * step_plain, rtol=1e-4, atol=1e-8, err_msg=key)
            changed += np.abs(step_plain).max() > 0
        else:
            np.testing.assert_allclose(step_boosted, step_plain, rtol=1e-4, atol=1e-8, err_msg=key)
    assert changed == 2  # kernel and bias moved


def test_median_frequency_weighting_logs_the_weights(tmp_path):
    lines = []
    train(apply_overrides(tiny_demo(steps=1), ["train.class_weighting=median_frequency"]), str(tmp_path), log=lines.append)
    (line,) = [line for line in lines if line.startswith("Class weights")]
    assert "background" in line


def test_unknown_class_weighting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="class_weighting='median'"):
        train(apply_overrides(tiny_demo(steps=1), ["train.class_weighting=median"]), str(tmp_path))


@pytest.mark.parametrize("value", ["1", "TRUE"])
def test_onednn_weight_cache_in_the_environment_is_refused_before_anything_is_written(tmp_path, monkeypatch, value):
    """Under TF_ONEDNN_ASSUME_FROZEN_WEIGHTS the forward pass would keep the first weights."""
    monkeypatch.setenv("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", value)
    with pytest.raises(ValueError, match=f"TF_ONEDNN_ASSUME_FROZEN_WEIGHTS={value} is set"):
        train(tiny_demo(steps=1), str(tmp_path / "run"), log=lambda line: None)
    assert not (tmp_path / "run").exists()


DROPOUT_MODEL = (
    "model.arch=deeplab_v2,model.backbone=vgg16,model.backbone_alpha=1.0,model.head=fc,model.fc_channels=16,model.atrous_rates=(12,),"
    "model.output_stride=8,model.dropout_rate=0.5,data.crop_size=32,train.deterministic=true"
)


def test_resumed_run_with_dropout_draws_the_uninterrupted_masks(tmp_path):
    """Dropout's generator state is checkpointed: resuming continues its masks, so a resumed run
    of a dropout model (DeepLab v1/v2 fc heads) ends with the uninterrupted run's weights."""
    experiment = apply_overrides(tiny_demo(steps=4), DROPOUT_MODEL)
    train(experiment, str(tmp_path / "whole"), log=lambda line: None)

    def interrupt_after_checkpoint_2(line):
        if line.startswith("step 3/"):
            raise Interrupt

    with pytest.raises(Interrupt):
        train(experiment, str(tmp_path / "resumed"), log=interrupt_after_checkpoint_2)
    reader = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints" / "ckpt-2"))
    assert any(name.startswith("random_state/") for name in reader.get_variable_to_shape_map())
    train(experiment, str(tmp_path / "resumed"), log=lambda line: None)

    whole = tf.train.load_checkpoint(str(tmp_path / "whole" / "checkpoints" / "ckpt-4"))
    resumed = tf.train.load_checkpoint(str(tmp_path / "resumed" / "checkpoints" / "ckpt-4"))
    names = [name for name in whole.get_variable_to_shape_map() if name.startswith("model_weights")]
    assert names
    for name in names:
        np.testing.assert_array_equal(resumed.get_tensor(name), whole.get_tensor(name), err_msg=name)
