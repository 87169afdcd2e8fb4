"""oneDNN's own account of a step: time and FLOP rate per primitive, read from an ONEDNN_VERBOSE log.

    ONEDNN_VERBOSE=1 python -m bench.profile_step --mode=training --precision=bfloat16 \
        --steps=2 --warmup=3 > LOG 2>&1
    python -m bench.onednn_verbose LOG [--steps=2] [--top=30]

oneDNN prints one `exec` line per primitive it runs: the primitive kind, the implementation it
chose (e.g. `brgconv_bwd_w:avx10_1_512_amx`), the propagation kind, and the problem (for a
convolution `mb4_ic256oc64_ih81oh81kh1sh1dh0ph0_iw81ow81kw1sw1dw0pw0`, for a matmul
`4x441x2048:4x2048x256`), then milliseconds. A step's lines repeat, in an order TensorFlow's
executor may vary: the last `--steps` periods of the log's exec lines (the shortest period whose
last `--steps` repetitions run the same primitives, in any order) are summed and divided by
`--steps`. Printed: ms per step by (kind, propagation,
implementation), then the `--top` costliest problems with their GFLOP and GFLOP/s (convolutions:
2 * mb * oh * ow * kh * kw * ic/g * oc; matmuls 2 * M * K * N per batch). Verbose logging slows
every primitive, so the times and rates are only relative to one another.
"""

import argparse
import collections
import re
import sys

from bench import provenance

CONV_DIMS = re.compile(r"(mb|g|ic|oc|ih|oh|kh|iw|ow|kw|id|od|kd)(\d+)")


def conv_gflop(problem: str) -> float:
    """Returns the GFLOP of one convolution primitive from its problem descriptor (0 when unreadable)."""
    dims = {}
    for name, value in CONV_DIMS.findall(problem):
        dims.setdefault(name, int(value))   # the first of each: "ih" before "iw"'s fields
    if not {"ic", "oc", "oh", "kh"} <= dims.keys():
        return 0.0
    spatial = dims["oh"] * dims.get("ow", 1) * dims.get("od", 1)
    taps = dims["kh"] * dims.get("kw", 1) * dims.get("kd", 1)
    return 2.0 * dims.get("mb", 1) * spatial * taps * dims["ic"] / dims.get("g", 1) * dims["oc"] / 1e9


def matmul_gflop(problem: str) -> float:
    """Returns the GFLOP of one matmul primitive from `[B x]M x K:[B x]K x N` (0 when unreadable)."""
    try:
        src, wei = problem.split(":")[:2]
        a = [int(d) for d in src.split("x")]
        b = [int(d) for d in wei.split("x")]
    except ValueError:
        return 0.0
    batch = 1
    for d in a[:-2]:
        batch *= d
    return 2.0 * batch * a[-2] * a[-1] * b[-1] / 1e9


def exec_lines(lines):
    """Returns (kind, implementation, propagation, problem, ms) for every `exec` line, in order."""
    rows = []
    for line in lines:
        fields = line.rstrip("\n").split(",")
        if len(fields) < 10 or fields[0] != "onednn_verbose" or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        kind, impl, prop = fields[at + 2], fields[at + 3], fields[at + 4]
        try:
            ms = float(fields[-1])
        except ValueError:
            continue
        rows.append((kind, impl, prop, fields[-2], ms))
    return rows


def last_steps(rows, steps: int):
    """Returns the exec rows of the last `steps` repetitions of the log's period.

    Raises ValueError when no period repeats `steps` times at the end of the log."""
    keys = [row[:4] for row in rows]
    n = len(keys)
    if steps == 1:
        return rows
    for period in range(1, n // steps + 1):
        last = collections.Counter(keys[n - period:])
        if all(collections.Counter(keys[n - (k + 1) * period:n - k * period]) == last
               for k in range(1, steps)):
            return rows[n - steps * period:]
    raise ValueError(f"the log's last {steps} steps do not repeat one sequence of primitives; "
                     f"was it written with --steps >= {steps}?")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", help="a file of ONEDNN_VERBOSE=1 output")
    parser.add_argument("--steps", type=int, default=2, help="repeated steps at the end of the log")
    parser.add_argument("--top", type=int, default=30, help="costliest problems listed")
    args = parser.parse_args(argv)
    with open(args.log) as f:
        rows = exec_lines(f)
    if not rows:
        sys.exit(f"{args.log}: no onednn_verbose exec lines (was ONEDNN_VERBOSE=1 set?)")
    try:
        step_rows = last_steps(rows, args.steps)
    except ValueError as e:
        sys.exit(f"{args.log}: {e}")
    print(provenance.describe())
    print(f"{args.log}: {len(step_rows) // args.steps} primitives per step, the last {args.steps} steps")
    by_impl = collections.defaultdict(lambda: [0.0, 0, 0.0])
    by_problem = collections.defaultdict(lambda: [0.0, 0, 0.0])
    for kind, impl, prop, problem, ms in step_rows:
        gflop = conv_gflop(problem) if kind == "convolution" else (
            matmul_gflop(problem) if kind == "matmul" else 0.0)
        for table, key in ((by_impl, (kind, prop, impl)), (by_problem, (kind, prop, impl, problem))):
            table[key][0] += ms / args.steps
            table[key][1] += 1
            table[key][2] += gflop / args.steps
    total = sum(v[0] for v in by_impl.values())
    print(f"\n{total:.1f} ms of primitives per step\n")
    print("| kind | propagation | implementation | ms/step | share | count/step | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for (kind, prop, impl), (ms, count, gflop) in sorted(by_impl.items(), key=lambda kv: -kv[1][0]):
        rate = f"{gflop / ms * 1e3:.0f}" if gflop else ""
        print(f"| {kind} | {prop} | {impl} | {ms:.1f} | {ms / total:.1%} | {count // args.steps} | {rate} |")
    print(f"\n| kind | propagation | implementation | problem | ms/step | count/step | GFLOP/step | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    top = sorted(by_problem.items(), key=lambda kv: -kv[1][0])[:args.top]
    for (kind, prop, impl, problem), (ms, count, gflop) in top:
        rate = f"{gflop / ms * 1e3:.0f}" if gflop else ""
        print(f"| {kind} | {prop} | {impl} | {problem} | {ms:.2f} | {count // args.steps} | "
              f"{gflop:.2f} | {rate} |")


if __name__ == "__main__":
    main()
