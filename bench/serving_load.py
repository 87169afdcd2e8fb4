"""Serving load: many threads calling one loaded SavedModel signature, checked against sequential calls.

    python -m bench.serving_load --saved_model=runs/demo/export [--threads=8] [--requests=50] \
        [--data_dir=../shared/data/camvid] [--images=4] [--batch=1]

Each request sends --batch real CamVid val images (PNG bytes as read from disk, 360x480) to
`serving_default` (an `image_bytes` signature). The --images distinct requests are first run
once sequentially (after one warm-up call); then --threads threads each send --requests requests
cycling through them, and every threaded result must equal the sequential one. Prints p50/p99
latency per request and images per second over the threaded phase. Uses only TensorFlow, as a
serving client would (the project is not imported).
"""

import argparse
import concurrent.futures
import os
import time

import numpy as np
import tensorflow as tf

from bench import provenance

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "camvid")


def camvid_requests(data_dir: str, count: int, batch: int) -> list:
    """Returns `count` requests of `batch` encoded CamVid val images each (tf.string [batch])."""
    with open(os.path.join(data_dir, "val.txt")) as f:
        names = [line.split()[0] for line in f.read().splitlines()[: count * batch]]
    encoded = [tf.io.read_file(os.path.join(data_dir, name)) for name in names]
    return [tf.stack(encoded[i * batch : (i + 1) * batch]) for i in range(count)]


def run_load(serve, requests: list, threads: int, per_thread: int) -> dict:
    """Calls `serve(request) -> labels array` sequentially once per request, then from `threads`
    threads `per_thread` times each (cycling through `requests`).

    Returns {"latencies": seconds per threaded call, "seconds": threaded wall time, "images":
    images served by the threads, "mismatches": threaded results differing from sequential ones}.
    """
    expected = [np.asarray(serve(request)) for request in requests]

    def worker(thread: int) -> list:
        timings = []
        for i in range(per_thread):
            index = (thread + i) % len(requests)
            start = time.perf_counter()
            labels = np.asarray(serve(requests[index]))
            timings.append((time.perf_counter() - start, not np.array_equal(labels, expected[index])))
        return timings

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        timings = [item for result in pool.map(worker, range(threads)) for item in result]
    seconds = time.perf_counter() - start
    images = sum(int(requests[(t + i) % len(requests)].shape[0]) for t in range(threads) for i in range(per_thread))
    return {
        "latencies": [latency for latency, _ in timings],
        "seconds": seconds,
        "images": images,
        "mismatches": sum(mismatch for _, mismatch in timings),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saved_model", required=True, help="Export folder (export.export_saved_model).")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="Requests per thread.")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--images", type=int, default=4, help="Distinct requests.")
    parser.add_argument("--batch", type=int, default=1, help="Images per request.")
    args = parser.parse_args()
    print(provenance.describe())

    signature = tf.saved_model.load(args.saved_model).signatures["serving_default"]
    requests = camvid_requests(args.data_dir, args.images, args.batch)
    signature(image_bytes=requests[0])  # warm-up
    result = run_load(lambda request: signature(image_bytes=request)["labels"].numpy(), requests, args.threads, args.requests)
    p50, p99 = np.percentile(result["latencies"], [50, 99]) * 1000
    print(f"{args.threads} threads x {args.requests} requests x {args.batch} CamVid PNG(s), {os.cpu_count()} CPUs")
    print(f"no errors; results differing from sequential ones: {result['mismatches']}")
    print(f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; {result['images'] / result['seconds']:.1f} images/s "
          f"({result['images']} images in {result['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
