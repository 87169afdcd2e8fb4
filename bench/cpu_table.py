"""The per-CPU table of BENCHMARKS.md (issue 21 item 4) from `bench.peers_compare --json` files.

    python -m bench.cpu_table runs/s11/peers_*.json [--against=torch]

One row per CPU (model name and the oneDNN flags `bench.provenance` recorded), one column per
mode and precision (inference / training x float32 / bfloat16); a cell reads "deeplab-tf vs
peer, deeplab-tf's speed-up over the peer, deeplab-tf's share of that run's conv peak", e.g.
"0.423 vs 0.487 s, 1.15x, 86%" (inference: median seconds per request) or "1.771 vs 1.534 img/s,
1.15x, 75%" (training: median images per second). Several runs of one cell are all listed, in
the order of the files. The last column names the commits and, per commit, the UTC time of its
runs.
"""

import argparse
import json
import sys

from bench.provenance import cpu_label

MODES = (("inference", "float32"), ("inference", "bfloat16"), ("training", "float32"), ("training", "bfloat16"))


def load(path: str) -> dict:
    """Returns the peers_compare results in the JSON file `path`. Raises ValueError naming the
    file if it has no "provenance" (written before peers_compare recorded its CPU) or no
    deeplab_tf row."""
    with open(path) as file:
        results = json.load(file)
    if "provenance" not in results:
        raise ValueError(f"{path}: no \"provenance\": written by a peers_compare that did not record its CPU, "
                         f"so no CPU row can hold it")
    if not any(row["name"] == "deeplab_tf" for row in results["rows"]):
        raise ValueError(f"{path}: no deeplab_tf row (peers {[row['name'] for row in results['rows']]})")
    return results


def cell(results: dict, against: str) -> str:
    """Returns the table cell of one run: deeplab-tf's and `against`'s medians, the speed-up
    (above 1: deeplab-tf faster) and deeplab-tf's achieved GFLOP/s over the run's conv peak.
    A missing or failed peer, or a run without a peak, shows as such."""
    rows = {row["name"]: row for row in results["rows"]}
    ours, training = rows["deeplab_tf"], results["args"]["mode"] == "training"
    key, unit = ("median_img_s", "img/s") if training else ("median_s", "s")
    if ours.get("error") or key not in ours.get("stats", {}):
        return f"deeplab_tf failed: {ours.get('error')}"
    text = f"{ours['stats'][key]:.3f}"
    peer = rows.get(against)
    if peer is None:
        text += f" {unit}, no {against} in this run"
    elif peer.get("error") or key not in peer.get("stats", {}):
        text += f" {unit}, {against} failed"
    else:
        theirs = peer["stats"][key]
        speedup = ours["stats"][key] / theirs if training else theirs / ours["stats"][key]
        text += f" vs {theirs:.3f} {unit}, {speedup:.2f}x"
    peak = results.get("peak_gflops")
    if peak and ours.get("gflops"):
        text += f", {100 * ours['gflops'] / peak:.0f}%"
    return text


def table(runs: list, against: str = "torch") -> str:
    """Returns the Markdown table of `runs` (peers_compare results, as `load` returns them):
    a row per CPU in the order first seen, a column per `MODES` entry, then per commit the UTC
    time of its runs (the first and last where it has several)."""
    by_cpu = {}
    for results in runs:
        args = results["args"]
        mode = (args["mode"], args.get("precision", "float32"))
        row = by_cpu.setdefault(cpu_label(results["provenance"]), {"cells": {}, "runs": {}})
        row["cells"].setdefault(mode, []).append(cell(results, against))
        provenance = results["provenance"]
        row["runs"].setdefault(provenance["commit"], []).append(provenance["utc"])
    header = ["CPU (flags)"] + [f"{mode} {precision}" for mode, precision in MODES] + ["code, time (UTC)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, row in by_cpu.items():
        cells = ["; ".join(row["cells"].get(mode, ["not run"])) for mode in MODES]
        runs = "; ".join(f"{commit}: {min(times)} to {max(times)}" if len(set(times)) > 1 else f"{commit}: {times[0]}"
                         for commit, times in row["runs"].items())
        lines.append("| " + " | ".join([label] + cells + [runs]) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="peers_compare --json files")
    parser.add_argument("--against", default="torch", help="the peer each cell compares with")
    args = parser.parse_args(argv)
    try:
        runs = [load(path) for path in args.files]
    except (OSError, ValueError) as error:
        print(f"cpu_table: {error}", file=sys.stderr)
        return 2
    print(f"deeplab-tf vs {args.against}: median s (inference) or img/s (training), speed-up, % of the run's conv peak")
    print(table(runs, args.against))
    return 0


if __name__ == "__main__":
    sys.exit(main())
