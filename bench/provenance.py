"""Where a benchmark's figures come from: the machine (its CPU first) and the code, so that every
figure a bench prints or writes names its CPU and commit.

    from bench import provenance
    print(provenance.describe())              # the header line of a bench's output
    json.dump({"provenance": provenance.record(), ...}, file)

The CPU is read as `deeplab_tf.cpu` reads it for the autotuner's cache key: /proc/cpuinfo's model
name and the flags of `deeplab_tf.cpu.CPU_FLAGS` it lists (those that select oneDNN's kernels).
Nothing here imports TensorFlow: its version is read from the installed package's metadata.
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess

from deeplab_tf.cpu import cpu

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _version(package: str):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def commit(repo: str = REPO):
    """Returns the short commit of the checkout `repo`, with "+changes" when tracked files differ
    from it, or None outside a git checkout (or without git)."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if changed else "")


def record() -> dict:
    """Returns the provenance as a JSON-ready dict: "cpu_model" (str), "cpu_flags" (sorted list
    of str), "cpus" (int, `os.cpu_count()`), "tensorflow" (version str, or None where it is not
    installed), "python" (version str), "commit" (`commit()`) and "utc" (the time of the call,
    "YYYY-MM-DDTHH:MM:SSZ")."""
    model, flags = cpu()
    return {"cpu_model": model, "cpu_flags": list(flags), "cpus": os.cpu_count(),
            "tensorflow": _version("tensorflow"), "python": platform.python_version(), "commit": commit(),
            "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def cpu_label(record: dict) -> str:
    """Returns the CPU of `record` in words: "AMD EPYC, 2 CPUs (avx, ..., avx512_bf16; no AMX)"."""
    flags = record["cpu_flags"]
    listed = ", ".join(flags) or "none of the flags oneDNN selects kernels by"
    if not any(flag.startswith("amx") for flag in flags):
        listed += "; no AMX"
    return f"{record['cpu_model']}, {record['cpus']} CPUs ({listed})"


def describe(recorded: dict | None = None) -> str:
    """Returns `recorded` (a `record()`; default: a new one) as one line: "machine: AMD EPYC, 2
    CPUs (...; no AMX), TensorFlow 2.21.0, Python 3.11.9, code 1696046, 2026-12-06T15:10:00Z"."""
    recorded = recorded or record()
    return (f"machine: {cpu_label(recorded)}, TensorFlow {recorded['tensorflow']}, Python {recorded['python']}, "
            f"code {recorded['commit']}, {recorded['utc']}")


if __name__ == "__main__":
    print(describe())
