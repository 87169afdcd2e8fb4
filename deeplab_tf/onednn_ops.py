"""oneDNN's TensorFlow ops, turned on by deeplab-tf's commands on CPUs where TensorFlow leaves them off.

On Linux x86, TensorFlow 2.21 runs its CPU ops on oneDNN's kernels by default only where the CPU
has AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (`TENSORFLOW_DEFAULT_ON_FLAGS`, its
`IsMklEnabled`); elsewhere (AVX2 CPUs such as AMD Zen 2/3, AVX-512 ones without VNNI such as
Intel Skylake-SP) it runs Eigen's. There deeplab-tf gives up its lead. Emulated on an AMD EPYC
Zen 4 (BENCHMARKS.md, "CPUs whose TensorFlow runs Eigen's kernels, emulated"), a DeepLabv3
ResNet-50 in float32 on Eigen's kernels against oneDNN's (against torch 2.13):
- oneDNN capped at AVX2: training 1.118 against 1.399 img/s (torch 1.109), serving a 513x513
  image 0.578 against 0.510 s (torch 0.629 s); the CamVid recipe's step 2.045 against 1.441 s;
- capped at AVX512_CORE (Skylake-SP's kernels): training 1.139 against 1.602 img/s (torch
  1.229), serving 0.507 against 0.432 s (torch 0.513 s); the CamVid step 2.34-2.59 against
  1.44-1.47 s.

`turn_on_where_off()` sets `TF_ENABLE_ONEDNN_OPTS=1` for the process where `turned_on_here()`:
the variable is unset (or empty), the CPU has AVX2 and none of those flags. TensorFlow reads the
variable once, when it is imported, so the command-line packages (`deeplab_tf.cli`, `export`)
call it when they are imported, before anything imports TensorFlow, and
`deeplab_tf.cli.flags.run` logs what it did. A process that imported TensorFlow first (a library
user's, the test suite's) keeps TensorFlow's default, and so does any value the user sets (0 or 1).

bfloat16: TensorFlow hands bfloat16 ops to oneDNN only on CPUs with AVX512F (or AVX_NE_CONVERT,
its `IsBF16SupportedByOneDNNOnThisCPU`); on AVX2 CPUs they stay on Eigen's kernels, as by
default. With oneDNN capped at AVX512_CORE on the Zen 4 (Skylake-SP's kernels), the suite's
bfloat16 tests pass with the ops on; capped at AVX2 (a state no real CPU has: TensorFlow still
sees AVX512F and hands bfloat16 to oneDNN, which has no AVX2 bfloat16 kernels) they crash.
"""

import functools
import os
import sys

from deeplab_tf import cpu

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
TENSORFLOW_DEFAULT_ON_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
"""The /proc/cpuinfo flags with which TensorFlow turns oneDNN's ops on by itself (Linux x86)."""


def turned_on_here(environ=None, flags=None) -> bool:
    """Returns True if deeplab-tf's commands turn oneDNN's ops on in a process whose environment
    is `environ` (default `os.environ`) on a CPU with the `deeplab_tf.cpu.CPU_FLAGS` `flags`
    (default: this CPU's): `VARIABLE` unset or empty, "avx2" in `flags` and none of
    `TENSORFLOW_DEFAULT_ON_FLAGS`."""
    environ = os.environ if environ is None else environ
    flags = cpu.cpu()[1] if flags is None else flags
    return (not environ.get(VARIABLE) and "avx2" in flags
            and not any(flag in flags for flag in TENSORFLOW_DEFAULT_ON_FLAGS))


@functools.cache
def turn_on_where_off() -> str:
    """Sets `VARIABLE`=1 in `os.environ` where `turned_on_here()` and TensorFlow is not imported
    yet (once it is, it has read the variable, and setting it would only mislead). Returns the
    line to log when it set it, naming the CPU and how to keep TensorFlow's default; "" when it
    left the environment alone. Runs once per process."""
    if "tensorflow" in sys.modules or not turned_on_here():
        return ""
    os.environ[VARIABLE] = "1"
    model, flags = cpu.cpu()
    return (f"{VARIABLE}=1 set by deeplab-tf: {model} ({', '.join(flags)}) has none of "
            f"{', '.join(TENSORFLOW_DEFAULT_ON_FLAGS)}, where TensorFlow runs Eigen's kernels by default; "
            f"oneDNN's trained deeplab-tf's models 1.25-1.4x and served them 1.13-1.17x faster on such CPUs "
            f"(emulated; BENCHMARKS.md). "
            f"Set {VARIABLE}=0 to keep TensorFlow's default")
