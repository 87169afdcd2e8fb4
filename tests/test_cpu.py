"""The CPU as /proc/cpuinfo describes it, and which CPUs compute bfloat16 natively."""

import pytest

from deeplab_tf import cpu
from deeplab_tf.layers import autotune
from tests.fake_cpu import AMX_CPU, BFLOAT16_CPU, FLOAT32_CPU, fake_cpuinfo


def test_reads_the_model_name_and_the_known_flags_of_the_first_processor(monkeypatch, tmp_path):
    fake_cpuinfo(monkeypatch, tmp_path, BFLOAT16_CPU)
    model, flags = cpu.cpu()
    assert model == "AMD EPYC 9R14"
    assert flags == ("avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512bw", "avx512f", "f16c", "fma")  # no fpu, sse2
    assert autotune.machine()["cpu"] == model and autotune.machine()["cpu_flags"] == list(flags)


def test_without_cpuinfo_the_platform_names_the_cpu(tmp_path):
    model, flags = cpu.read_cpuinfo(str(tmp_path / "missing"))
    assert model and flags == ()


@pytest.mark.parametrize("fake,native,unit", [(BFLOAT16_CPU, True, "avx512_bf16"), (AMX_CPU, True, "amx_bf16"),
                                              (FLOAT32_CPU, False, "neither avx512_bf16 nor amx_bf16")])
def test_native_bfloat16_only_with_a_bfloat16_unit(monkeypatch, tmp_path, fake, native, unit):
    fake_cpuinfo(monkeypatch, tmp_path, fake)
    found, reason = cpu.native_bfloat16()
    assert found is native
    assert reason.startswith(fake[0]) and unit in reason


def test_the_fake_is_undone_after_a_test(monkeypatch, tmp_path):
    real = cpu.cpu()
    fake_cpuinfo(monkeypatch, tmp_path, FLOAT32_CPU)
    assert cpu.cpu()[0] == "AMD EPYC 7B13"
    monkeypatch.undo()
    assert cpu.cpu() == real == cpu.read_cpuinfo(cpu.CPUINFO)
