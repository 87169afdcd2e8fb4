"""Speed choices timed on the machine in use, as cuDNN's benchmark mode does, cached on disk.

A choice that only changes speed calls `pick(key, names, prepare)` while its layer is traced:
`implementation="auto"` of the atrous convolutions (`deeplab_tf.layers.atrous_auto`: native,
space-to-batch, shifted GEMMs or per-tap gradients, full and depthwise), the batch norm of a
training step (`deeplab_tf.layers.fused_batch_norm`: TensorFlow's fused kernel or Keras' ops),
Keras' depthwise convolutions in bfloat16 and float16 (`deeplab_tf.layers.tuned_depthwise_conv`:
in the compute dtype or in float32), the kernel gradient of Keras' 1x1 convolutions in a
training step (`deeplab_tf.layers.tuned_conv`: oneDNN's or one GEMM), and the training loss's
per-pixel cross-entropy (`deeplab_tf.training.losses`: the one-hot form or TensorFlow's fused op).
The first time a key is seen on a machine, `prepare()` builds one run per candidate (one
`tf.function`, `timed_step`: the forward pass, plus the gradients where a gradient tape records
the call, i.e. in a training step), the runs are timed (`measure`: a warm-up each, then in turns,
each to at least `MIN_RUNS` runs and `BUDGET_SECONDS`; the least time counts), and the fastest (the first listed
on a tie) is written to the cache file. Later builds, in this process or another, read it and
time nothing. Candidates are exact implementations only (equal outputs to float rounding), so a
pick never changes what a model computes beyond rounding.

Switches:
- `DEEPLAB_TF_AUTOTUNE`: "0" turns tuning off; "1" or unset: on (the default since
  `bench/peers_compare.py` measured it no slower than the fixed rules on the AMD EPYC of
  BENCHMARKS.md, in training and inference, float32 and bfloat16: "Measured speed choices").
  The first build of a shape on a machine costs the timing, once (a ResNet-50 DeepLabv3 there:
  ~3-5 s for inference, ~20 s for a training step). The test suite sets "0"
  (tests/conftest.py); tests that tune set "1".
- Op determinism (`tf.config.experimental.enable_op_determinism()`, the trainer's
  `--deterministic`) turns it off: a pick timed on a busy machine could differ between runs.
- A function that XLA compiles (the trainer's step under `--jit_compile`) traces its layers
  inside `compiled_by_xla()`: the choices picked there are timed compiled by XLA too
  (`timed_step`), and kept apart from the others by a last key field "xla" (XLA fuses and
  lowers ops its own way, so the pick for oneDNN's kernels may be the slower one under it). A
  candidate XLA cannot compile is left out there, with a warning.
When off, each choice follows its fixed rule (`atrous_auto.fixed_rule`; the fused kernel; the
compute dtype; oneDNN's kernel gradient; the one-hot form).

Cache file: `$XDG_CACHE_HOME/deeplab_tf/autotune.json` (`~/.cache/deeplab_tf/autotune.json`
when XDG_CACHE_HOME is unset or empty), JSON, written atomically (a temporary file in the same
folder, then `os.replace`), format 2 (format-1 files are stale: their training timings of
convolutions left out the forward pass, which TensorFlow pruned; see `timed_step`):

    {
      "format": 2,
      "machine": {"cpu": "AMD EPYC 7B13", "cpu_flags": ["avx", "avx2", "fma"], "threads": 2,
                  "tensorflow": "2.21.0", "TF_ENABLE_ONEDNN_OPTS": ""},
      "choices": {
        "atrous_conv2d train float32 input=8x33x33x320 kernel=3x3x320x256 rate=12 padding=same":
            {"pick": "tap_gradient",
             "ms": {"native": 41.2, "space_to_batch": 55.0, "shifted_gemm": 48.3, "tap_gradient": 30.9}},
        "batch_norm train bfloat16 input=8x33x33x256": {"pick": "fused", "ms": {"fused": 1.9, "keras": 2.6}},
        "depthwise_conv2d train bfloat16 input=8x81x81x144 kernel=3x3x144x1 strides=2x2 dilation=1x1 padding=valid":
            {"pick": "float32", "ms": {"float32": 9.5, "native": 30.1}}
      },
      "other_machines": [
        {"machine": {"cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", ...}, "choices": {...}}
      ]
    }

`machine` is what the times depend on (`machine()`): the CPU's "model name" and the vector and
matrix flags of `CPU_FLAGS` it has (/proc/cpuinfo, read by `deeplab_tf.cpu`), the threads
TensorFlow runs ops on, TF's version and its oneDNN switch. The top-level `machine` and
`choices` are those of the process that wrote the file last; `other_machines` keeps the picks of
up to `MAX_MACHINES` - 1 machines before it, most recent first (a home folder shared by two CPU
models, another TensorFlow version, or runs with and without `TF_ENABLE_ONEDNN_OPTS`), so
alternating between them times nothing again (format-2 files written before `other_machines`
read as holding none). A key (`key`) is "<op> <train|infer>
<dtype> <field>=<value>...[ xla]", shapes written `8x33x33x320`; "train" times forward +
gradients, "infer" the forward pass, "xla" ends the key of a choice timed and run compiled by
XLA. `ms` holds each candidate's least time in milliseconds, for reading only (under XLA, only
the candidates that compiled). A file of another format, or one that is not this JSON,
is ignored with a warning and replaced at the next write, never an error; an entry whose pick is
not a candidate of its call is timed again. Delete the file to time again (e.g. after tuning on a
busy machine); the file is never torn. Processes sharing the file tune one at a time: each holds
an exclusive lock on `autotune.json.lock` beside it (`fcntl.flock`) while it reads, times and
writes a pick, so a second process (the other local worker of a training start) waits, then
reads the first one's pick instead of timing the same candidates beside it. Where the lock cannot
be taken (a file system without locks), they go on unlocked, and two processes tuning at once may
each drop the other's new entries (timed again later).
"""

import concurrent.futures
import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf
from tensorflow.python.framework import config as tf_config  # is_op_determinism_enabled: not public in 2.21

from deeplab_tf import cpu
from deeplab_tf.cpu import CPU_FLAGS  # noqa: F401  (the flags `machine` records)

FORMAT = 2
MAX_MACHINES = 8
"""How many machines' picks the cache file keeps: its writer's and `other_machines`."""
SWITCH = "DEEPLAB_TF_AUTOTUNE"
BUDGET_SECONDS = 0.02
MIN_RUNS = 3

_lock = threading.Lock()  # one pick at a time (replicas may trace in threads)
_thread = threading.local()  # .xla: this thread traces a function that XLA compiles


def enabled() -> bool:
    """Returns True if choices are timed: `DEEPLAB_TF_AUTOTUNE` is "1" or unset, and op
    determinism is off. Raises ValueError naming the variable for a value other than "0"/"1"."""
    value = os.environ.get(SWITCH, "1")
    if value not in ("0", "1"):
        raise ValueError(f"{SWITCH}={value!r}; allowed: 0 (tuning off) or 1 (on, the default)")
    return value == "1" and not tf_config.is_op_determinism_enabled()


@tf.autograph.experimental.do_not_convert  # Python run while tracing: never converted
@contextlib.contextmanager
def compiled_by_xla(enabled: bool = True):
    """Within (`with compiled_by_xla(jit_compile):`, in the body of a function traced for
    `tf.function(jit_compile=True)`), when `enabled`: the choices picked in this thread are keyed
    (`key`) and timed (`timed_step`) for XLA. Nests; the previous state comes back on exit."""
    previous = getattr(_thread, "xla", False)
    _thread.xla = bool(enabled)
    try:
        yield
    finally:
        _thread.xla = previous


def xla() -> bool:
    """Returns True inside `compiled_by_xla()` (in this thread), False elsewhere."""
    return getattr(_thread, "xla", False)


def cache_path() -> str:
    """Returns the cache file's path (see the module docstring); the folder may not exist yet."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "deeplab_tf", "autotune.json")


def machine() -> dict:
    """Returns the `machine` record of the cache file for this process (JSON values)."""
    model, flags = cpu.cpu()
    threads = tf.config.threading.get_intra_op_parallelism_threads() or (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return {"cpu": model, "cpu_flags": list(flags), "threads": threads, "tensorflow": tf.__version__,
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "")}


def key(op: str, training: bool, dtype: str, **fields) -> str:
    """Returns the cache key of one choice, e.g. `key("batch_norm", True, "float32",
    input=(8, 33, 33, 256))` -> "batch_norm train float32 input=8x33x33x256" (shapes: sequences
    of ints, e.g. a `tf.TensorShape`, joined by "x"; other values as `str`), and
    "... input=8x33x33x256 xla" inside `compiled_by_xla()`."""
    def text(value):
        if isinstance(value, (tuple, list, tf.TensorShape)):
            return "x".join(str(int(size)) for size in value)
        return str(value)

    return " ".join([op, "train" if training else "infer", dtype,
                     *(f"{name}={text(value)}" for name, value in fields.items()), *(["xla"] if xla() else [])])


def random_tensors(shapes, dtype: str) -> list:
    """Returns one fixed-seed standard normal tensor of `dtype` per shape in `shapes`."""
    return [tf.random.stateless_normal([int(size) for size in shape], seed=[index, 0], dtype=dtype)
            for index, shape in enumerate(shapes)]


def timed_step(fn: Callable, inputs: Sequence, training: bool) -> Callable[[], object]:
    """Returns a run of `fn(*inputs)` as one `tf.function` of no arguments: the forward pass,
    and with `training` also the gradients (of the sum of the outputs) with respect to `inputs`
    and to the trainable variables `fn` reads, as a training step computes them; compiled by XLA
    inside `compiled_by_xla()` (`pick` carries that state into its timing thread).

    The run returns the outputs, and with `training` `(outputs, gradients)`: a training run
    that returned the gradients only would let TensorFlow prune every forward op no gradient
    reads (a convolution's output, for one), and time the backward pass alone."""
    inputs = list(inputs)

    def forward():
        return fn(*inputs)

    def forward_and_gradients():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = fn(*inputs)
        return outputs, tape.gradient(outputs, [*inputs, *tape.watched_variables()])

    return tf.function(forward_and_gradients if training else forward, autograph=False,
                       jit_compile=True if xla() else None)


@tf.autograph.experimental.do_not_convert
def eagerly(fn: Callable[[], object]) -> object:
    """Returns `fn()`, run in a thread of its own: eagerly, and outside what is local to the
    caller's thread (a function being traced, a recording gradient tape, Keras' scopes, a
    `tf.distribute` strategy's scope or replica context), so it can run while a model is traced
    and nothing it runs is recorded or distributed. `tf.init_scope` would not do: it stops every
    gradient tape of the thread, also those `fn` opens. Exceptions propagate."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(fn).result()


def measure(runs: Mapping[str, Callable[[], object]],
            on_error: Callable[[str, Exception], None] | None = None,
            errors: tuple[type[Exception], ...] = ()) -> dict[str, float]:
    """Returns {name: least wall time in seconds of `runs[name]()`}. Each run is called once
    untimed first (tracing, first allocations); a run whose first call raises one of `errors` is
    left out and passed to `on_error(name, error)`. Then the runs take turns, one call each per
    round, each until it has run at least `MIN_RUNS` times and `BUDGET_SECONDS` in all: a burst of
    load on the machine slows one round of every candidate, not all the runs of one of them, and
    the least time leaves that round out."""
    ready = {}
    for name, run in runs.items():
        try:
            run()
        except errors as error:
            on_error(name, error)
            continue
        ready[name] = run
    times = {name: [] for name in ready}

    def wanted(name):
        return len(times[name]) < MIN_RUNS or sum(times[name]) < BUDGET_SECONDS

    while any(wanted(name) for name in ready):
        for name, run in ready.items():
            if wanted(name):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


@tf.autograph.experimental.do_not_convert  # Python run while tracing: never converted
def pick(key: str, names: Sequence[str], prepare: Callable[[], Mapping[str, Callable]]) -> str:
    """Returns the fastest of `names` (the exact candidates of the call `key` describes) on this
    machine: the pick cached for `key`, or, at its first build here, the one whose run takes the
    least time (`measure` of the runs `prepare()` returns, a dict name -> run, called only then);
    that pick and the times are written to the cache file. A single name is returned untimed.
    Times `eagerly`, so it can be called while a function is traced, and under XLA inside
    `compiled_by_xla()`, where a candidate XLA cannot compile is left out with a warning (a
    ValueError naming `key` if none compiles). Call where `enabled()`."""
    if len(names) == 1:
        return names[0]
    path, current = cache_path(), machine()
    with _lock, _locked(path):
        choices, others = _read(path, current)
        if choices.get(key, {}).get("pick") in names:
            return choices[key]["pick"]
        compiled = xla()
        seconds = eagerly(lambda: _times(prepare, compiled))
        if not seconds:
            raise ValueError(f"autotune: no candidate of {key!r} ({', '.join(names)}) compiles under XLA; "
                             f"train without --jit_compile")
        best = min(seconds, key=lambda name: (seconds[name], names.index(name)))
        choices[key] = {"pick": best, "ms": {name: round(value * 1e3, 4) for name, value in seconds.items()}}
        _write(path, {"format": FORMAT, "machine": current, "choices": choices,
                      "other_machines": others[:MAX_MACHINES - 1]})
        return best


@contextlib.contextmanager
def _locked(path: str):
    """Holds an exclusive lock on `path` + ".lock" (created if needed) while inside: another
    process entering it for the same cache file waits. Goes on unlocked when the lock file
    cannot be opened or locked (e.g. an unwritable folder, which `_write` reports)."""
    handle = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path + ".lock", "a", encoding="utf-8")
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError:
        pass
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # releases the lock


def _times(prepare: Callable[[], Mapping[str, Callable]], compiled: bool) -> dict:
    """Returns {name: least seconds (`measure`)} of the runs `prepare()` returns, built and timed
    in this thread with XLA when `compiled`; then a run XLA cannot compile is left out, with a
    warning naming it."""

    def not_compiled(name, error):
        reason = str(error).strip().splitlines()[0][:200]
        warnings.warn(f"autotune: candidate {name!r} does not compile under XLA and is left out ({reason})")

    errors = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) if compiled else ()
    with compiled_by_xla(compiled):
        return measure(prepare(), on_error=not_compiled, errors=errors)


def _read(path: str, current: dict) -> tuple[dict, list]:
    """Returns (the `choices` of `current`'s machine, the other machines' sections, each
    {"machine": ..., "choices": ...}, most recent first) of the cache file at `path`; ({}, [])
    when there is none, and ({}, []) with a warning when it is not format-`FORMAT` JSON."""
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (FileNotFoundError, NotADirectoryError):
        return {}, []
    except (OSError, ValueError) as error:  # ValueError: not JSON, not UTF-8
        warnings.warn(f"ignoring the unreadable autotune cache {path} ({error}); it is replaced "
                      "at the next write", stacklevel=3)
        return {}, []
    problem = _problem(content)
    if problem:
        warnings.warn(f"ignoring the autotune cache {path}: {problem}; it is replaced at the next "
                      "write", stacklevel=3)
        return {}, []
    sections = [{"machine": content["machine"], "choices": content["choices"]}, *content.get("other_machines", [])]
    mine = [section["choices"] for section in sections if section["machine"] == current]
    return (mine[0] if mine else {}), [section for section in sections if section["machine"] != current]


def _problem(content) -> str:
    """Why `content` (parsed JSON) is not a cache file this version reads, or ""."""
    if not isinstance(content, dict):
        return "corrupt: not a deeplab_tf autotune file"
    if content.get("format") != FORMAT:
        return f"stale: format {content.get('format')!r}, this version writes {FORMAT}"
    others = content.get("other_machines", [])
    sections = [content, *others] if isinstance(others, list) else [None]
    if not all(_is_section(section) for section in sections):
        return "corrupt: not a deeplab_tf autotune file"
    return ""


def _is_section(section) -> bool:
    """Returns True if `section` holds a `machine` record and `choices` whose entries each name a pick."""
    return (isinstance(section, dict) and isinstance(section.get("machine"), dict)
            and isinstance(section.get("choices"), dict)
            and all(isinstance(entry, dict) and isinstance(entry.get("pick"), str)
                    for entry in section["choices"].values()))


def _write(path: str, content: dict) -> None:
    """Replaces the file at `path` by `content` atomically; warns (never raises) if it cannot."""
    folder, temporary = os.path.dirname(path), None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".autotune-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(content, file, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError as error:
        if temporary and os.path.exists(temporary):
            os.remove(temporary)
        warnings.warn(f"cannot write the autotune cache {path} ({error}): picks not cached are "
                      f"timed again at the next build; {SWITCH}=0 turns tuning off", stacklevel=3)
