"""`python -m deeplab_tf.cli.train` as a user runs it: with `--mixed_precision=auto`, the choice this
CPU gets (bfloat16 only with native bfloat16 units) is printed first and recorded in config.json;
a crop the network cannot take, or an atrous implementation without gradients in the training
precision, is refused before training."""

import json
import re

import pytest

from deeplab_tf import cpu
from tests.cpu_capabilities import has_dilated_conv2d_gradients

TINY = ("model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=32,data.max_examples=2,train.batch_size=2,train.steps=1")


def test_mixed_precision_auto_prints_and_records_this_cpus_choice(run_command, tmp_path):
    model_dir = tmp_path / "m"
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}",
                         f"--override={TINY}", "--mixed_precision=auto")
    assert result.returncode == 0, result.stderr[-2000:]
    native, reason = cpu.native_bfloat16()  # this machine's, read here independently of the command
    expected = "mixed_bfloat16" if native else ""
    first, second = result.stdout.splitlines()[:2]
    assert first == f"train.mixed_precision=auto: {expected or 'float32'} ({reason})"
    assert second.startswith("Training demo: ") and f", {expected or 'float32'}, model " in second
    assert json.loads((model_dir / "config.json").read_text())["train"]["mixed_precision"] == expected


def test_mixed_precision_auto_with_deterministic_is_float32(run_command, tmp_path):
    model_dir = tmp_path / "m"
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}",
                         f"--override={TINY}", "--mixed_precision=auto", "--deterministic")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] == (
        "train.mixed_precision=auto: float32 (train.deterministic: the same precision on every CPU)")
    config = json.loads((model_dir / "config.json").read_text())["train"]
    assert (config["mixed_precision"], config["deterministic"]) == ("", True)


def test_a_crop_too_small_for_the_network_is_one_line_before_training(run_command, tmp_path):
    """MobileNetV2 at output stride 16 halves an 8x8 crop to nothing before its last strided
    convolution: refused before the first step, naming the crop."""
    model_dir = tmp_path / "m"
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}",
                         f"--override={TINY},data.crop_size=8")
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(r"error: data\.crop_size=\(8, 8\) is too small for the model: [^\n]+\n", result.stderr)
    assert "Training demo" not in result.stdout
    assert not (model_dir / "checkpoints").exists()


def test_native_atrous_without_its_gradients_is_refused_before_building(run_command, tmp_path):
    """No CPU kernel has float64 gradients of a dilated convolution: `native` cannot train in
    float64, said in one line naming both fields before the model is built."""
    if has_dilated_conv2d_gradients("float64"):
        pytest.skip("this machine's TensorFlow has float64 gradients of dilated convolutions")
    model_dir = tmp_path / "m"
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}",
                         f"--override={TINY},model.atrous_implementation=native,train.mixed_precision=float64")
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(r"error: Invalid experiment 'demo': model\.atrous_implementation='native' with "
                        r"train\.mixed_precision='float64': [^\n]+\n", result.stderr)
    assert result.stdout == ""
    assert not (model_dir / "config.json").exists()
