"""The worker side of the peers benchmark: a JSON-lines loop over stdin/stdout (stdlib only).

Every worker runs in its own virtualenv and imports only this module (and, for the TensorFlow
workers, `tf_common`) from the repo. The driver (`python -m bench.peers_compare`) starts it as
`PYTHON -m bench.peers.worker_X 'CONFIG_JSON'` with the repository root as the working directory,
so `bench.peers` imports without deeplab_tf installed; the worker builds its model, answers
`{"event": "ready", ...}`, then serves one request per line:

    {"cmd": "run", "n": K}   run K iterations (forward pass or training step), reply the seconds of each
    {"cmd": "rss"}           reply the peak resident set size of this process (getrusage), MiB
    {"cmd": "quit"}          exit

Replies go to a private copy of the original stdout; file descriptor 1 is pointed at stderr so
that whatever the frameworks print cannot corrupt the channel.
"""

import json
import os
import resource
import sys
import time
import traceback

REPLY_PREFIX = "@@peer "


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_inputs(config: dict):
    """The benchmark's input, identical in every worker: float32 images [B, H, W, 3] drawn from
    N(0, 1) (already "normalised"), and int32 labels [B, H, W] in [0, num_classes), from the
    config keys batch, height, width, num_classes and seed."""
    import numpy as np

    rng = np.random.default_rng(config["seed"])
    shape = (config["batch"], config["height"], config["width"])
    images = rng.standard_normal(shape + (3,)).astype(np.float32)
    labels = rng.integers(0, config["num_classes"], shape).astype(np.int32)
    return images, labels


def _open_channel():
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def serve(build) -> None:
    """Runs a worker. `build(config)` returns (run, info): `run()` performs one iteration and
    returns only when its result is computed; `info` is a JSON-safe dict (versions, parameters,
    FLOP counts...). The config is the JSON object given as the first command-line argument."""
    channel = _open_channel()

    def reply(**message):
        channel.write(REPLY_PREFIX + json.dumps(message) + "\n")
        channel.flush()

    config = json.loads(sys.argv[1])
    try:
        started = time.perf_counter()
        run, info = build(config)
        info = dict(info, build_seconds=round(time.perf_counter() - started, 2), rss_after_build_mib=peak_rss_mib())
    except Exception as error:  # reported to the driver, which goes on without this peer
        traceback.print_exc()
        reply(event="error", error=f"{type(error).__name__}: {error}")
        return
    reply(event="ready", info=info)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["cmd"] == "run":
                seconds = []
                for _ in range(int(request.get("n", 1))):
                    start = time.perf_counter()
                    run()
                    seconds.append(time.perf_counter() - start)
                reply(event="ran", seconds=seconds)
            elif request["cmd"] == "rss":
                reply(event="rss", peak_rss_mib=peak_rss_mib())
            elif request["cmd"] == "quit":
                reply(event="bye")
                return
            else:
                reply(event="error", error=f"unknown command {request['cmd']!r}")
        except Exception as error:
            traceback.print_exc()
            reply(event="error", error=f"{type(error).__name__}: {error}")
