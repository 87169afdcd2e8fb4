"""Training loop: resumes from the latest checkpoint, never restarts or mixes configs."""

import json
import os

import pytest

from deeplab_tf.config import apply_overrides
from deeplab_tf.trainer import train
from experiments import get_experiment

TINY = (
    "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
    "data.crop_size=64,data.max_examples=16,train.batch_size=2,train.log_every=1,train.checkpoint_every=2"
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


def test_model_dir_of_another_config_is_refused(tmp_path):
    train(tiny_demo(steps=1), str(tmp_path), log=lambda line: None)
    with pytest.raises(ValueError, match=r"different config.*train.steps: saved 1, now 2"):
        train(tiny_demo(steps=2), str(tmp_path), log=lambda line: None)
