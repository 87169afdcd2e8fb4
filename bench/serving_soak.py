"""Serving soak: one loaded export, several threads, valid requests mixed with every invalid kind.

    python -m bench.serving_soak --saved_model=runs/demo/export [--threads=4] [--requests=2000] \
        [--warmup=100] [--seed=0] [--json=PATH]

The export must have every input type (`--input_type=image_bytes,image_tensor,tf_example`), a
dynamic batch and input size, and the default --max_pixels. The requests are
`bench.request_kinds`': valid ones of every input type and image format (tiny images included)
and one of every invalid kind (wrong rank, channels, dtype, empty batch or image, bytes of no or
an unknown format, unreadable headers, headers of huge images, too many GIF frames, mixed sizes,
too many pixels, a tf.Example without its image). Each kind is first sent once, single-threaded:
the valid answers are the reference. Then --threads threads send --warmup requests and, after
resident memory (VmRSS of /proc/self/status) is read, --requests more, each drawn at random
(seeded): half valid, half invalid. Every valid answer must equal its reference, every invalid
request must fail with an InvalidArgumentError whose message matches the kind's, and resident
memory must grow less than 10% from after the warm-up to the end. Prints the figures (and writes
them to --json); the exit status is 0 when all hold, 1 otherwise. A request that kills the process
ends it with the signal's status instead: run it as a child process to count deaths.
"""

import argparse
import concurrent.futures
import json
import os
import re
import threading
import time

import numpy as np
import tensorflow as tf

from bench import provenance
from bench.request_kinds import invalid_requests, signature_taking, valid_requests
from deeplab_tf.cli.flags import error_text

MAX_RSS_GROWTH = 0.10


def resident_mb() -> float:
    """Returns this process's resident memory in MiB (VmRSS of /proc/self/status)."""
    with open("/proc/self/status") as f:
        kilobytes = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kilobytes / 1024


def send(call) -> tuple:
    """Sends one prepared request `call` = (request, signature, tensor); returns (outputs
    {name: array} or None, error or None)."""
    request, signature, tensor = call
    try:
        return {key: value.numpy() for key, value in signature(**{request.input: tensor}).items()}, None
    except Exception as error:  # every outcome is recorded, none ends the soak
        return None, error


def outcome(request, outputs, error, expected) -> str:
    """Returns "ok" for an answer as required (a valid request equal to `expected`, an invalid one
    refused with its message), else what went wrong."""
    if request.error is None:
        if error is not None:
            return f"valid request failed: {type(error).__name__}: {first_line(error)}"
        same = outputs.keys() == expected.keys() and all(np.array_equal(outputs[k], expected[k]) for k in outputs)
        return "ok" if same else "answer differs from the single-threaded one"
    if error is None:
        return "invalid request answered"
    message = getattr(error, "message", str(error))
    if not isinstance(error, tf.errors.InvalidArgumentError) or not re.search(request.error, message):
        return f"wrong error: {type(error).__name__}: {first_line(error)}"
    return "ok"


def first_line(error) -> str:
    """Returns the first line of what `error` says (`deeplab_tf.cli.flags.error_text`), at most 300 characters."""
    return error_text(error).splitlines()[0][:300]


def run_threads(calls, expected, draws, threads: int) -> dict:
    """Sends `calls[i]` for every i of `draws` from `threads` threads; returns {"counts": {kind:
    requests}, "failures": {what went wrong: count}, "latencies": seconds per request}."""
    lock, counts, failures, latencies = threading.Lock(), {}, {}, []

    def work(indices):
        for index in indices:
            start = time.perf_counter()
            outputs, error = send(calls[index])
            elapsed = time.perf_counter() - start
            result = outcome(calls[index][0], outputs, error, expected[index])
            with lock:
                name = calls[index][0].name
                counts[name] = counts.get(name, 0) + 1
                latencies.append(elapsed)
                if result != "ok":
                    key = f"{name}: {result}"
                    failures[key] = failures.get(key, 0) + 1

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, np.array_split(draws, threads)))
    return {"counts": counts, "failures": failures, "latencies": latencies}


def draw(rng, valid: int, invalid: int, count: int) -> np.ndarray:
    """Returns `count` request indices, half from the first `valid`, half from the `invalid` after them."""
    is_valid = rng.random(count) < 0.5
    return np.where(is_valid, rng.integers(0, valid, count), valid + rng.integers(0, invalid, count))


def soak(loaded, threads: int, requests: int, warmup: int, seed: int = 0) -> dict:
    """Runs the soak described in the module docstring on the loaded SavedModel `loaded`; returns its figures."""
    valid, invalid = valid_requests(seed), invalid_requests()
    calls = [(r, signature_taking(loaded, r.input), r.tensor()) for r in valid + invalid]
    references = [send(call) for call in calls]
    expected = [outputs for outputs, _ in references]
    first_pass = {call[0].name: outcome(call[0], *sent, expected=outputs)
                  for call, sent, outputs in zip(calls, references, expected)}
    rng = np.random.default_rng(seed)
    run_threads(calls, expected, draw(rng, len(valid), len(invalid), warmup), threads)
    rss_after_warmup, start = resident_mb(), time.perf_counter()
    result = run_threads(calls, expected, draw(rng, len(valid), len(invalid), requests), threads)
    seconds, rss_end = time.perf_counter() - start, resident_mb()
    p50, p99 = np.percentile(result["latencies"], [50, 99]) * 1000
    figures = {
        "threads": threads, "requests": requests, "warmup": warmup, "seconds": round(seconds, 1),
        "kinds": {"valid": len(valid), "invalid": len(invalid)}, "requests_per_kind": result["counts"],
        "first_pass_failures": {name: what for name, what in first_pass.items() if what != "ok"},
        "failures": result["failures"], "latency_ms": {"p50": round(p50, 1), "p99": round(p99, 1)},
        "rss_mb": {"after_warmup": round(rss_after_warmup, 1), "end": round(rss_end, 1)},
        "rss_growth": round(rss_end / rss_after_warmup - 1, 4),
    }
    figures["passed"] = not figures["first_pass_failures"] and not figures["failures"] and \
        figures["rss_growth"] < MAX_RSS_GROWTH
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved_model", required=True, help="Export folder with every input type.")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000, help="Requests in all, after the warm-up.")
    parser.add_argument("--warmup", type=int, default=100, help="Threaded requests before memory is read.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="Also write the figures to this file.")
    args = parser.parse_args()
    run_provenance = provenance.record()
    print(provenance.describe(run_provenance))

    figures = soak(tf.saved_model.load(args.saved_model), args.threads, args.requests, args.warmup, args.seed)
    figures["provenance"] = run_provenance
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(f"{'passed' if figures['passed'] else 'FAILED'}: {args.requests} requests from {args.threads} threads in "
          f"{figures['seconds']} s on {os.cpu_count()} CPUs; resident memory {figures['rss_mb']['after_warmup']} -> "
          f"{figures['rss_mb']['end']} MiB ({100 * figures['rss_growth']:+.1f}%)")
    raise SystemExit(0 if figures["passed"] else 1)


if __name__ == "__main__":
    main()
