"""`train.mixed_precision=auto`: bfloat16 only on a CPU with native bfloat16 units (a faked
/proc/cpuinfo), float32 elsewhere and under `train.deterministic`; the choice is logged, built and
recorded in config.json, and a resumed run keeps it."""

import json

import pytest

from deeplab_tf.config import apply_overrides
from deeplab_tf.training import trainer
from experiments import get_experiment
from tests.fake_cpu import AMX_CPU, BFLOAT16_CPU, FLOAT32_CPU, fake_cpuinfo

TINY = ("model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=32,data.max_examples=4,train.batch_size=2,train.log_every=1,train.warmup_steps=0")


def tiny_auto_demo(steps=1, *overrides):
    return apply_overrides(get_experiment("demo"), [TINY, f"train.steps={steps},train.mixed_precision=auto", *overrides])


@pytest.mark.parametrize("fake, deterministic, expected", [
    (BFLOAT16_CPU, False, "mixed_bfloat16 (AMD EPYC 9R14 has avx512_bf16)"),
    (AMX_CPU, False, "mixed_bfloat16 (Intel(R) Xeon(R) Platinum 8488C has amx_bf16)"),
    (FLOAT32_CPU, False, "float32 (AMD EPYC 7B13 has neither avx512_bf16 nor amx_bf16)"),
    (BFLOAT16_CPU, True, "float32 (train.deterministic: the same precision on every CPU)"),
])
def test_auto_resolves_by_the_cpu_and_to_float32_when_deterministic(monkeypatch, tmp_path, fake, deterministic,
                                                                     expected):
    fake_cpuinfo(monkeypatch, tmp_path, fake)
    experiment, lines = tiny_auto_demo(1, f"train.deterministic={deterministic}"), []
    resolved = trainer.resolve_precision(experiment, str(tmp_path / "new_run"), log=lines.append)
    assert resolved.train.mixed_precision == ("mixed_bfloat16" if expected.startswith("mixed") else "")
    assert resolved.train.deterministic == deterministic and resolved.model == experiment.model
    assert lines == [f"train.mixed_precision=auto: {expected}"]


def test_other_precisions_are_left_as_they_are(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, BFLOAT16_CPU)
    for precision in ("", "mixed_float16", "mixed_bfloat16", "float64"):
        experiment, lines = apply_overrides(tiny_auto_demo(), f"train.mixed_precision={precision}"), []
        assert trainer.resolve_precision(experiment, str(tmp_path), log=lines.append) is experiment and not lines


@pytest.fixture
def built_policies(monkeypatch):
    """The dtype policy of every model the trainer assembles, in order."""
    policies, assemble = [], trainer.assemble
    monkeypatch.setattr(trainer, "assemble", lambda *args, dtype_policy, **kwargs: (
        policies.append(dtype_policy) or assemble(*args, dtype_policy=dtype_policy, **kwargs)))
    return policies


def test_auto_trains_in_bfloat16_on_a_bfloat16_cpu_records_it_and_a_resumed_run_keeps_it(
        monkeypatch, tmp_path, built_policies):
    model_dir, lines = tmp_path / "run", []
    fake_cpuinfo(monkeypatch, tmp_path, BFLOAT16_CPU)
    assert trainer.train(tiny_auto_demo(1), str(model_dir), log=lines.append)["step"] == 1
    assert lines[0] == "train.mixed_precision=auto: mixed_bfloat16 (AMD EPYC 9R14 has avx512_bf16)"
    assert lines[1].startswith("Training demo: ") and ", mixed_bfloat16, model " in lines[1]
    assert built_policies == ["mixed_bfloat16"]
    config = json.loads((model_dir / "config.json").read_text())
    assert config["train"]["mixed_precision"] == "mixed_bfloat16"
    # Rerun on a CPU without bfloat16 units: auto keeps the run's precision, nothing is refused.
    fake_cpuinfo(monkeypatch, tmp_path, FLOAT32_CPU)
    lines.clear()
    assert trainer.train(tiny_auto_demo(1), str(model_dir), log=lines.append)["step"] == 1
    assert lines[0] == "train.mixed_precision=auto: mixed_bfloat16 (as this run's config.json records)"
    assert any(line.startswith("Training already complete: step 1") for line in lines), lines
    assert built_policies == ["mixed_bfloat16", "mixed_bfloat16"]
    assert json.loads((model_dir / "config.json").read_text())["train"]["mixed_precision"] == "mixed_bfloat16"


def test_auto_trains_in_float32_without_bfloat16_units(monkeypatch, tmp_path, built_policies):
    model_dir, lines = tmp_path / "run", []
    fake_cpuinfo(monkeypatch, tmp_path, FLOAT32_CPU)
    trainer.train(tiny_auto_demo(1), str(model_dir), log=lines.append)
    assert lines[0] == "train.mixed_precision=auto: float32 (AMD EPYC 7B13 has neither avx512_bf16 nor amx_bf16)"
    assert ", float32, model " in lines[1]
    assert built_policies == ["float32"]
    assert json.loads((model_dir / "config.json").read_text())["train"]["mixed_precision"] == ""
