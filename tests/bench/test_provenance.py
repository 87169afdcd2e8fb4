"""bench/provenance.py: the CPU and code a benchmark's figures come from."""

import subprocess

from bench import provenance


def test_record_names_this_cpu_as_proc_cpuinfo_does():
    record = provenance.record()
    try:
        with open("/proc/cpuinfo") as file:
            lines = file.read().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    flags = next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())
    if model:
        assert record["cpu_model"] == model
    # The recorded flags are the cpuinfo flags among those oneDNN selects kernels by.
    assert set(record["cpu_flags"]) <= flags and record["cpu_flags"] == sorted(record["cpu_flags"])
    assert ("avx2" in record["cpu_flags"]) == ("avx2" in flags)
    assert record["utc"].endswith("Z") and record["cpus"] >= 1
    assert provenance.describe(record).startswith(f"machine: {record['cpu_model']}, {record['cpus']} CPUs (")


def test_cpu_label_says_when_there_is_no_amx():
    record = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx512_bf16"], "cpus": 2}
    assert provenance.cpu_label(record) == "AMD EPYC, 2 CPUs (avx512_bf16; no AMX)"
    record["cpu_flags"] = ["amx_bf16", "amx_tile"]
    assert provenance.cpu_label(record) == "AMD EPYC, 2 CPUs (amx_bf16, amx_tile)"


def test_commit_is_the_checkout_head_and_marks_changes(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout

    assert provenance.commit(str(tmp_path)) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    full = git("log", "-1", "--format=%H").strip()
    clean = provenance.commit(str(tmp_path))
    assert full.startswith(clean) and len(clean) >= 7
    (tmp_path / "untracked.txt").write_text("not tracked: not a change of the code")
    assert provenance.commit(str(tmp_path)) == clean
    (tmp_path / "a.txt").write_text("two")
    assert provenance.commit(str(tmp_path)) == clean + "+changes"
