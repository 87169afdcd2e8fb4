"""DeepLabv3 ResNet-50 side by side: deeplab-tf vs keras-hub, TF Model Garden and PyTorch (issue 9).

    python -m bench.peers_compare --mode=inference [--rounds=20]    # 513x513, batch 1
    python -m bench.peers_compare --mode=training  [--rounds=5]     # 321x321, batch 4, SGD momentum
        [--peers=deeplab_tf,keras_hub,model_garden,torch[,deeplab_tf_autotuned,deeplab_tf_uncached,
                 deeplab_tf_onednn_ops,torch_frozen]]
        [--size=N|HxW] [--batch=B] [--warmup=K]
        [--venv_dir=~/.cache/deeplab_tf_bench/venvs] [--install_only] [--reinstall] [--no_peak]
        [--peak_shape=8x65x65x256->256] [--deeplab_override=model.atrous_implementation=native] [--deeplab_jit]
        [--deeplab_unfolded] [--precision=float32|bfloat16] [--json=results.json]

Each peer runs in its own process and virtualenv (created under --venv_dir when missing, see
bench/peers/venvs.py; deeplab-tf runs in this interpreter's environment), started as
`python -m bench.peers.worker_X` from the repository root, and builds its model
with random weights. The peer `deeplab_tf_autotuned` (not in the default list) is deeplab-tf
with its speed choices timed on this machine (`DEEPLAB_TF_AUTOTUNE=1`, deeplab_tf/layers/autotune.py)
from an empty cache in the run's log folder; the tuning happens in its first call, whose time
the warm-up line prints for every peer; `deeplab_tf` runs with the environment's setting (tuned,
from the user's cache file, unless `DEEPLAB_TF_AUTOTUNE=0`: the fixed rules). In inference the
deeplab-tf peers run as `predict` and `evaluate` serve a SavedModel, with oneDNN's weight cache
on (`TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1`, deeplab_tf/onednn_weight_cache.py), except the peer
`deeplab_tf_uncached` (not in the default list; inference only), which reorders its weights at
every call as TensorFlow does by default. The peer `torch_frozen` (not in the default list;
inference only) is PyTorch served the way its documentation recommends for CPU inference:
traced and `torch.jit.freeze`d (batch norms folded, weights prepared once), in the torch venv.
The peer `deeplab_tf_onednn_ops` (not in the default list) is deeplab-tf with TensorFlow's oneDNN
ops switched on (`TF_ENABLE_ONEDNN_OPTS=1`), for CPUs where TensorFlow 2.21 runs Eigen's kernels
by default (without AVX512_VNNI, AVX512_BF16, AVX_VNNI and AMX; emulated on others by running
the whole command with `TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`),
so the two kernel sets are timed side by side in one run. On such a CPU every deeplab-tf peer runs
with the ops on unless the environment sets the variable, as deeplab-tf's commands do
(deeplab_tf/onednn_ops.py); run the driver with `TF_ENABLE_ONEDNN_OPTS=0` to time TensorFlow's default.
After
--warmup iterations each, the driver alternates the peers, one iteration each, for --rounds
rounds (A B C D P A B C D P ...), so that all see the same machine load; every peer gets the same input (N(0,1) images, random labels, 21 classes). P is a dense
3x3 convolution (forward + both gradients, TensorFlow) measuring the machine's conv peak in the
same run. Printed: min/median/max seconds (inference) or images/s (training) per peer,
deeplab-tf's speed-up over each, the forward GFLOPs of each model (convolutions and matmuls
counted from the traced graph, padding taps included; 3x that per training step), achieved
GFLOP/s and deeplab-tf's fraction of the conv peak, and each worker's peak RSS (getrusage).

--precision=bfloat16 runs every peer in its framework's own mixed precision: Keras' and tf_keras'
"mixed_bfloat16" policy (bfloat16 compute, float32 variables), `torch.autocast("cpu",
torch.bfloat16)` for PyTorch, and the conv peak in bfloat16. Fast only on CPUs with bfloat16
instructions (AVX512_BF16, AMX); the default is float32.
"""

import argparse
import datetime
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

from bench import provenance
from bench.peers import report, venvs
from bench.peers.protocol import REPLY_PREFIX
from deeplab_tf import onednn_ops
from deeplab_tf.onednn_weight_cache import FROZEN_WEIGHTS_VARIABLE

# The workers run as `python -m bench.peers.worker_X` with this as their working directory, so
# that `bench.peers` imports in the peers' virtualenvs, where deeplab_tf is not installed.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_PEERS = ("deeplab_tf", "keras_hub", "model_garden", "torch")
ALL_PEERS = DEFAULT_PEERS + ("deeplab_tf_autotuned", "deeplab_tf_uncached", "deeplab_tf_onednn_ops", "torch_frozen")
DEEPLAB_PEERS = ("deeplab_tf", "deeplab_tf_autotuned", "deeplab_tf_uncached",
                 "deeplab_tf_onednn_ops")  # run in this interpreter's environment
INFERENCE_ONLY = {"deeplab_tf_uncached": "differs from deeplab_tf in inference only (training never caches weights)",
                  "torch_frozen": "is a served (frozen) model: inference only"}
VENV_OF = {"torch_frozen": "torch"}  # peers that are a variant of another peer: its venv and worker
DEFAULTS = {"inference": {"size": "513", "batch": 1, "warmup": 2, "rounds": 20},
            "training": {"size": "321", "batch": 4, "warmup": 2, "rounds": 5}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("inference", "training"), default="inference")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 20 inference, 5 training)")
    parser.add_argument("--warmup", type=int, help="untimed iterations per peer first (default 2)")
    parser.add_argument("--size", help="N or HxW (default 513 inference, 321 training)")
    parser.add_argument("--batch", type=int, help="default 1 inference, 4 training")
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peers", default=",".join(DEFAULT_PEERS))
    parser.add_argument("--venv_dir", default=os.environ.get("DEEPLAB_TF_BENCH_VENVS", venvs.DEFAULT_ROOT))
    parser.add_argument("--install_only", action="store_true", help="create/update the venvs, then stop")
    parser.add_argument("--reinstall", action="store_true", help="rebuild the peers' venvs")
    parser.add_argument("--no_peak", action="store_true", help="skip the dense-conv peak measurement")
    parser.add_argument("--peak_shape", default="8x65x65x256->256")
    parser.add_argument("--deeplab_override", default="", help="e.g. model.atrous_implementation=native (auto is the default)")
    parser.add_argument("--deeplab_jit", action="store_true", help="deeplab-tf's step with XLA (jit_compile)")
    parser.add_argument("--deeplab_unfolded", action="store_true",
                        help="inference with the batch norms as separate ops (by default they are folded into "
                             "the convolutions, as the exporter does: deeplab_tf.models.fold_batch_norm)")
    parser.add_argument("--deeplab_python", default=sys.executable, help="interpreter with deeplab_tf")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="every peer's compute precision (bfloat16: each framework's mixed precision)")
    parser.add_argument("--torch_threads", type=int, default=0, help="torch.set_num_threads (0 = default)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per request")
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS[args.mode].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.height, args.width = report.parse_size(args.size)
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(args.peer_list) - set(ALL_PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {list(ALL_PEERS)}")
    for name, why in INFERENCE_ONLY.items():
        if args.mode == "training" and name in args.peer_list:
            parser.error(f"{name} {why}")
    return args


class Worker:
    """One peer's process; requests and replies are JSON lines (bench/peers/protocol.py)."""

    def __init__(self, name, python, module, config, log_dir, timeout, env=None):
        self.name, self.timeout, self.info, self.error = name, timeout, {}, None
        self.log_path = os.path.join(log_dir, f"{name}.log")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen(
            [python, "-m", module, json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log_path, "w"),
            text=True, bufsize=1, env=env, cwd=REPO,
        )
        self.replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            if line.startswith(REPLY_PREFIX):
                self.replies.put(json.loads(line[len(REPLY_PREFIX):]))
        self.replies.put({"event": "error", "error": f"worker exited (code {self.process.wait()})"})

    def wait_reply(self):
        try:
            reply = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            reply = {"event": "error", "error": f"no reply within {self.timeout:.0f} s"}
        if reply["event"] == "error":
            self.error = reply["error"]
        return reply

    def request(self, **message):
        if self.error:
            return {"event": "error", "error": self.error}
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except OSError as error:
            self.error = f"worker gone: {error}"
            return {"event": "error", "error": self.error}
        return self.wait_reply()

    def log_tail(self, lines=8):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def close(self):
        if self.process.poll() is None and not self.error:
            self.request(cmd="quit")
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def deeplab_environment(name: str, mode: str, log_dir: str) -> dict[str, str]:
    """Returns the environment variables the deeplab-tf peer `name` (of `DEEPLAB_PEERS`) runs with
    beyond the driver's own, in `mode` ("inference" or "training"); `log_dir` holds the
    autotuned peer's empty tuning cache."""
    env = {}
    if name == "deeplab_tf_autotuned":
        env.update(DEEPLAB_TF_AUTOTUNE="1", XDG_CACHE_HOME=os.path.join(log_dir, "autotune_cache"))
    if name == "deeplab_tf_onednn_ops" or onednn_ops.turned_on_here():  # the latter: as the commands do
        env[onednn_ops.VARIABLE] = "1"
    if mode == "inference":  # served weights never change: see deeplab_tf/onednn_weight_cache.py
        env[FROZEN_WEIGHTS_VARIABLE] = "0" if name == "deeplab_tf_uncached" else "1"
    return env


def _log(message=""):
    print(message, flush=True)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    _log(f"# peers_compare --mode={args.mode}  ({datetime.datetime.now().isoformat(timespec='seconds')})")
    _log(f"command: {' '.join(['python -m bench.peers_compare'] + (sys.argv[1:] if argv is None else list(argv)))}")
    run_provenance = provenance.record()
    _log(f"{provenance.describe(run_provenance)}; load average at start {os.getloadavg()[0]:.2f}")
    _log(f"input: {args.height}x{args.width}x3, batch {args.batch}, {args.num_classes} classes, {args.precision}; "
         f"warm-up {args.warmup}, rounds {args.rounds}")

    installs = {}
    for name in args.peer_list:
        if name in DEEPLAB_PEERS:
            continue
        venv = VENV_OF.get(name, name)
        if venv not in installs:
            installs[venv] = venvs.ensure(venv, args.venv_dir, reinstall=args.reinstall, log=_log)
        marker = installs[name] = installs[venv]
        _log(f"venv {name}: {'ok' if marker['ok'] else 'INSTALL FAILED'}; versions {marker.get('versions')}; "
             f"installed with {marker.get('chosen')}; pip check: {' / '.join(marker.get('pip_check') or [])}")
    if args.install_only:
        return 0 if all(m["ok"] for m in installs.values()) else 1

    config = {"mode": args.mode, "batch": args.batch, "height": args.height, "width": args.width,
              "num_classes": args.num_classes, "seed": args.seed, "precision": args.precision}
    log_dir = tempfile.mkdtemp(prefix="peers_compare_")
    _log(f"worker logs: {log_dir}")
    specs = []  # (name, python, module, config, extra environment)
    for name in args.peer_list:
        if name in DEEPLAB_PEERS:
            worker_config = dict(config, override=args.deeplab_override, jit_compile=args.deeplab_jit,
                                 fold_batch_norm=not args.deeplab_unfolded)
            specs.append((name, args.deeplab_python, "bench.peers.worker_deeplab_tf", worker_config,
                          deeplab_environment(name, args.mode, log_dir)))
        elif installs[name]["ok"]:
            venv = VENV_OF.get(name, name)
            extra = {"threads": args.torch_threads, "freeze": name == "torch_frozen"} if venv == "torch" else {}
            specs.append((name, venvs.venv_python(args.venv_dir, venv), f"bench.peers.worker_{venv}",
                          dict(config, **extra), {}))
    if not args.no_peak:
        peak_config = dict(config, peak_shape=args.peak_shape)
        specs.append(("conv_peak", args.deeplab_python, "bench.peers.worker_conv_peak", peak_config, {}))

    workers = []
    try:
        for name, python, module, worker_config, env in specs:  # one build at a time
            worker = Worker(name, python, module, worker_config, log_dir, args.timeout, env)
            reply = worker.wait_reply()
            if reply["event"] == "ready":
                worker.info = reply["info"]
                _log(f"ready {name}: {json.dumps(worker.info)}")
            else:
                _log(f"FAILED {name}: {reply['error']}\n{worker.log_tail()}")
            workers.append(worker)
        live = [w for w in workers if not w.error]
        for worker in live:
            if args.warmup:
                reply = worker.request(cmd="run", n=args.warmup)
                if reply["event"] == "ran":  # the first call traces (and, autotuned, times the choices)
                    _log(f"warm-up {worker.name}: first {reply['seconds'][0]:.2f} s, then "
                         + ", ".join(f"{s:.3f}" for s in reply["seconds"][1:]))
        times = {w.name: [] for w in workers}
        for round_index in range(args.rounds):
            line = []
            for worker in live:
                if worker.error:
                    continue
                reply = worker.request(cmd="run", n=1)
                if reply["event"] == "ran":
                    times[worker.name].extend(reply["seconds"])
                    line.append(f"{worker.name} {reply['seconds'][0]:.3f}s")
                else:
                    _log(f"FAILED {worker.name}: {reply['error']}\n{worker.log_tail()}")
            _log(f"round {round_index + 1}/{args.rounds}: " + ", ".join(line))
        rss = {}
        for worker in live:
            reply = worker.request(cmd="rss")
            rss[worker.name] = reply.get("peak_rss_mib")
    finally:
        for worker in workers:
            worker.close()

    by_name = {w.name: w for w in workers}
    stats = {name: report.summarize(times[name], args.batch, args.mode) for name in times}
    reference = stats.get("deeplab_tf")
    rows = []
    for name in args.peer_list:
        worker = by_name.get(name)
        row = {"name": name}
        if worker is None:
            row.update(error="install failed", version=str(installs.get(name, {}).get("versions")))
        else:
            info = worker.info
            row.update(version=info.get("version", "-"), stats=stats.get(name), rss_mib=rss.get(name),
                       gflop=(info.get("flops") or {}).get("gflop"), error=worker.error)
            if stats.get(name):
                row["speedup"] = report.speedup(reference, stats[name]) if reference else None
                if row["gflop"]:
                    row["gflops"] = report.gflops_per_s(row["gflop"], stats[name]["median_s"], args.mode)
        rows.append(row)
    _log()
    _log(report.table(rows, args.mode))
    _log()
    for row in rows:
        info = by_name[row["name"]].info if row["name"] in by_name else {}
        if info:
            _log(f"- {row['name']}: {info.get('model')}; {info.get('parameters', 0):,} parameters; "
                 f"build {info.get('build_seconds')} s")
    peak = None
    if "conv_peak" in by_name and stats.get("conv_peak"):
        step_gflop = by_name["conv_peak"].info["step_gflop"]
        peak_stats = stats["conv_peak"]
        peak = step_gflop / peak_stats["median_s"]
        _log(f"- dense conv peak ({by_name['conv_peak'].info['model']}, {step_gflop} GFLOP/step): "
             f"median {peak:.1f} GFLOP/s (best {step_gflop / peak_stats['min_s']:.1f}, "
             f"worst {step_gflop / peak_stats['max_s']:.1f}); peak RSS {rss.get('conv_peak', 0):.0f} MiB")
    dl = next((r for r in rows if r["name"] == "deeplab_tf" and r.get("gflops")), None)
    if dl:
        fraction = f", {100 * dl['gflops'] / peak:.0f}% of the conv peak" if peak else ""
        per_step = "" if args.mode == "inference" else f", {3 * dl['gflop']:.1f} GFLOP per training step (3x)"
        _log(f"- deeplab-tf: {dl['gflop']:.1f} GFLOP forward{per_step}, {dl['gflops']:.1f} GFLOP/s achieved{fraction}")
    _log(f"load average at end {os.getloadavg()[0]:.2f}; wall time {time.time() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items()}, "provenance": run_provenance, "rows": rows,
                       "installs": installs,
                       "infos": {w.name: w.info for w in workers}, "times": times, "peak_gflops": peak}, f, indent=1)
    return 0 if all(not r.get("error") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
