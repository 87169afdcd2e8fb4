"""oneDNN's TensorFlow ops turned on by deeplab-tf's commands where TensorFlow 2.21 leaves them off
(Linux x86 CPUs with AVX2 and none of AVX512_VNNI, AVX512_BF16, AVX_VNNI, AMX), and only there."""

import os
import subprocess
import sys

import pytest

from deeplab_tf import onednn_ops
from tests.fake_cpu import AMX_CPU, BFLOAT16_CPU, FLOAT32_CPU

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKYLAKE_SP = ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", "avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl")
AVX_VNNI_CPU = ("12th Gen Intel(R) Core(TM) i7-12700", "avx avx2 fma f16c avx_vnni")
NO_AVX2 = ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "avx")


def flags_of(fake):
    return tuple(fake[1].split())


@pytest.mark.parametrize("fake, environ, on", [
    (FLOAT32_CPU, {}, True),  # Zen 3: AVX2 only
    (SKYLAKE_SP, {}, True),  # AVX-512 without VNNI
    (FLOAT32_CPU, {"TF_ENABLE_ONEDNN_OPTS": ""}, True),  # empty: TensorFlow reads it as unset
    (FLOAT32_CPU, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False),  # the user's choice is kept
    (FLOAT32_CPU, {"TF_ENABLE_ONEDNN_OPTS": "1"}, False),
    (BFLOAT16_CPU, {}, False),  # TensorFlow turns them on itself (AVX512_VNNI, AVX512_BF16)
    (AMX_CPU, {}, False),
    (AVX_VNNI_CPU, {}, False),
    (NO_AVX2, {}, False),  # not measured there
    (("", ""), {}, False),  # no /proc/cpuinfo (not Linux): no flags
])
def test_turned_on_only_where_tensorflow_runs_eigen_and_the_user_did_not_choose(fake, environ, on):
    assert onednn_ops.turned_on_here(environ, flags_of(fake)) is on


def _fresh_process(code: str, cpuinfo: str, environ: dict) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python whose `deeplab_tf.cpu` reads the cpuinfo file `cpuinfo`;
    returns the finished process (its text `stdout` and `stderr`)."""
    prelude = f"import deeplab_tf.cpu\ndeeplab_tf.cpu.CPUINFO = {cpuinfo!r}\n"
    result = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO,
                            env={**environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture
def avx2_cpuinfo(tmp_path):
    model, flags = FLOAT32_CPU
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n")
    return str(path)


ONEDNN_STATE = ("import os\nfrom tensorflow.python.util import _pywrap_util_port\n"
                "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), _pywrap_util_port.IsMklEnabled())\n")


@pytest.mark.parametrize("setting, expected", [(None, "1 True"), ("0", "0 False")])
def test_a_command_package_sets_it_before_tensorflow_reads_it(avx2_cpuinfo, setting, expected):
    """On an AVX2 CPU, importing the commands' package before TensorFlow turns the ops on in
    TensorFlow itself (`IsMklEnabled`); a user's 0 keeps them off."""
    environ = {key: value for key, value in os.environ.items() if key != onednn_ops.VARIABLE}
    if setting is not None:
        environ[onednn_ops.VARIABLE] = setting
    for package in ("deeplab_tf.cli", "export"):
        assert _fresh_process(f"import {package}\nimport tensorflow\n" + ONEDNN_STATE, avx2_cpuinfo,
                              environ).stdout.split("\n")[-2] == expected


def test_after_tensorflow_is_imported_the_environment_is_left_alone(avx2_cpuinfo):
    """A library user who imported TensorFlow first: TensorFlow has read the variable, so setting
    it would only claim a state TensorFlow does not have (the tuning cache keys by it)."""
    environ = {key: value for key, value in os.environ.items() if key != onednn_ops.VARIABLE}
    output = _fresh_process("import tensorflow\nimport deeplab_tf.cli\n" + ONEDNN_STATE, avx2_cpuinfo, environ).stdout
    assert output.split("\n")[-2].split()[0] == "None"


def test_a_command_says_it_set_the_variable(avx2_cpuinfo):
    """On stderr, beside TensorFlow's own notices: stdout stays the command's output."""
    environ = {key: value for key, value in os.environ.items() if key != onednn_ops.VARIABLE}
    code = ("import runpy, sys\nsys.argv = ['zoo']\n"
            "runpy.run_module('deeplab_tf.cli.zoo', run_name='__main__')\n")
    result = _fresh_process(code, avx2_cpuinfo, environ)
    lines = [line for line in result.stderr.splitlines() if line.startswith("TF_ENABLE_ONEDNN_OPTS")]
    assert lines == [(
        "TF_ENABLE_ONEDNN_OPTS=1 set by deeplab-tf: AMD EPYC 7B13 (avx, avx2, f16c, fma) has none of avx512_vnni, "
        "avx512_bf16, avx_vnni, amx_tile, amx_int8, amx_bf16, where TensorFlow runs Eigen's kernels by default; "
        "oneDNN's trained deeplab-tf's models 1.25-1.4x and served them 1.13-1.17x faster on such CPUs (emulated; "
        "BENCHMARKS.md). Set "
        "TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's default")]
    assert result.stdout.startswith("camvid_mnv2_v3plus")  # zoo's own output


def test_nothing_is_said_or_set_on_a_cpu_where_tensorflow_turns_them_on(tmp_path):
    model, flags = BFLOAT16_CPU
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n")
    environ = {key: value for key, value in os.environ.items() if key != onednn_ops.VARIABLE}
    code = ("import os, runpy, sys\nsys.argv = ['zoo']\n"
            "try:\n    runpy.run_module('deeplab_tf.cli.zoo', run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n")
    result = _fresh_process(code, str(path), environ)
    assert "TF_ENABLE_ONEDNN_OPTS=1 set" not in result.stderr and result.stdout.splitlines()[-1] == "None"
