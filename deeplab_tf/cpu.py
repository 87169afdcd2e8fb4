"""The CPU this process runs on, as /proc/cpuinfo describes it: its model name and the vector and
matrix flags that select TensorFlow's (oneDNN's) float kernels.

Two kinds of choice read it: the speed choices timed per machine (`deeplab_tf.layers.autotune`
keys its cache file by it) and the precision `auto` of export (`--precision=auto`) and training
(`train.mixed_precision=auto`), which takes bfloat16 only where `native_bfloat16` finds units
that compute it natively (`BFLOAT16_FLAGS`: AVX512_BF16, AMX-BF16). Elsewhere its arithmetic
goes through float32 conversions, and no speed-up is expected (not measured: BENCHMARKS.md has
bfloat16 figures for AVX512_BF16 and AMX CPUs only).
"""

import functools
import platform

CPUINFO = "/proc/cpuinfo"
# The /proc/cpuinfo flags that select TensorFlow's (oneDNN's) float kernels.
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "avx_ne_convert",
             "amx_tile", "amx_bf16", "amx_fp16", "amx_int8")
# The flags of units that compute bfloat16 natively (dot products of bfloat16 pairs).
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu() -> tuple[str, tuple[str, ...]]:
    """Returns `read_cpuinfo(CPUINFO)`, read once per process."""
    return read_cpuinfo(CPUINFO)


def read_cpuinfo(path: str) -> tuple[str, tuple[str, ...]]:
    """Returns (model name, sorted flags of `CPU_FLAGS` it has) of the first CPU in the cpuinfo
    file `path`; where there is no such file, `platform.processor()` (or the machine type) and no
    flags."""
    fields = {}
    try:
        with open(path) as file:
            for line in file:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split()) & set(CPU_FLAGS)
    return fields.get("model name") or platform.processor() or platform.machine(), tuple(sorted(flags))


def native_bfloat16() -> tuple[bool, str]:
    """Returns (True if this CPU has a unit of `BFLOAT16_FLAGS`, why), the reason in words to
    log, e.g. "AMD EPYC has avx512_bf16" or "Intel(R) Xeon(R) ... has neither avx512_bf16 nor
    amx_bf16"."""
    model, flags = cpu()
    units = [flag for flag in BFLOAT16_FLAGS if flag in flags]
    if units:
        return True, f"{model} has {' and '.join(units)}"
    return False, f"{model} has neither {' nor '.join(BFLOAT16_FLAGS)}"
