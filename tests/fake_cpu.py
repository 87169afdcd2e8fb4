"""A fake /proc/cpuinfo for tests of choices that depend on the CPU (`deeplab_tf.cpu`)."""

import functools

from deeplab_tf import cpu

# (model name, flags) of a CPU with native bfloat16 (Zen 4: AVX512_BF16), one with it through
# AMX-BF16 alone (flags cut from a Sapphire Rapids), and one without (Zen 3: AVX2 only).
BFLOAT16_CPU = ("AMD EPYC 9R14", "fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512_vnni avx512_bf16")
AMX_CPU = ("Intel(R) Xeon(R) Platinum 8488C", "avx avx2 fma avx512f avx512_fp16 amx_tile amx_bf16 amx_int8")
FLOAT32_CPU = ("AMD EPYC 7B13", "fpu sse2 avx avx2 fma f16c")


def fake_cpuinfo(monkeypatch, tmp_path, model_and_flags) -> str:
    """Makes `deeplab_tf.cpu.cpu()` read a cpuinfo file of two processors of (model name, flags),
    written in `tmp_path`, until the test ends (`monkeypatch` then puts back the real reading and
    its cache). Returns the file's path."""
    model, flags = model_and_flags
    processor = "processor\t: {}\nvendor_id\t: Fake\nmodel name\t: " + model + "\nflags\t\t: " + flags + "\n\n"
    path = tmp_path / "cpuinfo"
    path.write_text(processor.format(0) + processor.format(1))
    monkeypatch.setattr(cpu, "cpu", functools.cache(functools.partial(cpu.read_cpuinfo, str(path))))
    return str(path)
