"""bench/cpu_table.py: the per-CPU table built from peers_compare JSON files."""

import json

import pytest

from bench import cpu_table

AMD = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx512_bf16", "avx512f"], "cpus": 2, "tensorflow": "2.21.0",
       "python": "3.11.7", "commit": "abc1234", "utc": "2026-12-06T15:00:00Z"}
INTEL = dict(AMD, cpu_model="Intel(R) Xeon(R) Platinum 8480+", cpu_flags=["amx_bf16", "avx512_fp16"])


def run(mode, precision, ours, torch, provenance=AMD, gflops=150.0, peak=300.0):
    key = "median_img_s" if mode == "training" else "median_s"
    rows = [{"name": "deeplab_tf", "stats": {key: ours}, "gflops": gflops}]
    if torch is not None:
        rows.append({"name": "torch", "stats": {key: torch}})
    return {"args": {"mode": mode, "precision": precision}, "provenance": provenance, "rows": rows,
            "peak_gflops": peak}


def test_inference_cell_is_the_seconds_ratio_and_training_cell_the_rate_ratio():
    # By hand: 0.5 s against torch's 0.6 s is 1.20x; 150 of a 300 GFLOP/s peak is 50%.
    assert cpu_table.cell(run("inference", "float32", 0.5, 0.6), "torch") == "0.500 vs 0.600 s, 1.20x, 50%"
    # 1.8 img/s against 1.5 img/s is 1.20x; 210 of 280 is 75%.
    assert cpu_table.cell(run("training", "float32", 1.8, 1.5, gflops=210.0, peak=280.0), "torch") == (
        "1.800 vs 1.500 img/s, 1.20x, 75%")


def test_cell_names_a_missing_or_failed_peer_and_a_run_without_peak():
    assert cpu_table.cell(run("inference", "float32", 0.5, None, peak=None), "torch") == (
        "0.500 s, no torch in this run")
    failed = run("training", "bfloat16", 3.0, 2.0)
    failed["rows"][1] = {"name": "torch", "error": "install failed"}
    assert cpu_table.cell(failed, "torch") == "3.000 img/s, torch failed, 50%"


def test_table_has_a_row_per_cpu_and_lists_repeated_runs():
    text = cpu_table.table([run("inference", "float32", 0.5, 0.6), run("training", "bfloat16", 3.0, 2.5),
                            run("inference", "float32", 0.4, 0.6, provenance=INTEL),
                            run("inference", "float32", 0.45, 0.5)])
    lines = text.splitlines()
    assert len(lines) == 4  # header, separator, AMD, Intel
    amd, intel = lines[2].split(" | "), lines[3].split(" | ")
    assert amd[0] == "| AMD EPYC, 2 CPUs (avx512_bf16, avx512f; no AMX)"
    assert amd[1] == "0.500 vs 0.600 s, 1.20x, 50%; 0.450 vs 0.500 s, 1.11x, 50%"
    assert amd[2] == "not run" and amd[4] == "3.000 vs 2.500 img/s, 1.20x, 50%"
    assert intel[0] == "| Intel(R) Xeon(R) Platinum 8480+, 2 CPUs (amx_bf16, avx512_fp16)"
    assert intel[1] == "0.400 vs 0.600 s, 1.50x, 50%"
    assert amd[-1] == "abc1234: 2026-12-06T15:00:00Z |"  # three runs at one time
    assert intel[-1] == "abc1234: 2026-12-06T15:00:00Z |"


def test_the_code_column_groups_runs_by_commit_with_their_first_and_last_time():
    early = dict(AMD, commit="1111111", utc="2026-12-06T16:20:00Z")
    late = dict(AMD, commit="2222222", utc="2026-12-06T16:40:00Z")
    middle = dict(AMD, commit="2222222", utc="2026-12-06T16:30:00Z")
    text = cpu_table.table([run("inference", "float32", 0.5, 0.6, provenance=early),
                            run("training", "float32", 1.8, 1.5, provenance=late),
                            run("inference", "bfloat16", 0.2, 0.25, provenance=middle)])
    assert text.splitlines()[2].endswith(
        "| 1111111: 2026-12-06T16:20:00Z; 2222222: 2026-12-06T16:30:00Z to 2026-12-06T16:40:00Z |")


def test_load_refuses_a_file_without_provenance_naming_it(tmp_path):
    old = tmp_path / "old.json"
    results = run("inference", "float32", 0.5, 0.6)
    del results["provenance"]
    old.write_text(json.dumps(results))
    with pytest.raises(ValueError, match="old.json.*did not record its CPU"):
        cpu_table.load(str(old))
    assert cpu_table.main([str(old)]) == 2


def test_main_prints_the_table(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(run("training", "float32", 1.8, 1.5)))
    assert cpu_table.main([str(path)]) == 0
    assert "| AMD EPYC, 2 CPUs (avx512_bf16, avx512f; no AMX) | not run | not run | 1.800 vs 1.500 img/s, 1.20x, 50%" in (
        capsys.readouterr().out)
