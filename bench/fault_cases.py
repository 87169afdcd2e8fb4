"""Issue 20's fault cases run against one checkout, and the before/after table of two such runs.

Every case the issue names (an input or a state that lost the user's files, killed a server, or
ended in an error nobody could read) is run as a user runs it: the command-line entry points
(`python -m ...`) and the exported SavedModel's signatures, each in a child process with the
checkout's Python (REPO/.venv/bin/python), cwd and PYTHONPATH = REPO, so what is measured is the
code at --repo, not this file's checkout. Its files go into a fresh temporary folder (never inside
a repository); nothing else is written but --out. A tiny 2-step `demo` run (`TINY` overrides) and
its export are made once and shared; a case that could damage them works on a copy.

    git clone -q . /tmp/fault-before && git -C /tmp/fault-before checkout -q 7268522
    ln -s "$PWD/.venv" /tmp/fault-before/.venv
    git clone -q . /tmp/fault-after && ln -s "$PWD/.venv" /tmp/fault-after/.venv
    nice -n 15 python -m bench.fault_cases --repo=/tmp/fault-before --out=runs/fault_cases/before.json
    nice -n 15 python -m bench.fault_cases --repo=/tmp/fault-after --out=runs/fault_cases/after.json
    python -m bench.fault_cases --table runs/fault_cases/before.json runs/fault_cases/after.json \
        > runs/fault_cases/table.md

[--cases=1,7a,24] runs some cases only (case 21 gives rows 21, 21v and 22; case 24 rows 24 and
24k); [--jobs=3] runs that many cases at a time (their seconds then include each other's load);
[--keep] keeps the temporary folder.

For each command --out records: the command as shown (temporary paths shortened to RUN, DIR, ...),
its exit status (128 + signal when killed by one), the lines it printed (stdout and stderr into one
file, as `> log 2>&1`), the first line containing "error" (`mentions_error`; else the last line),
wall seconds and peak resident memory (`os.wait4`'s ru_maxrss), and the case's own check of what
is left on disk or what was answered. Only the standard library, numpy and Pillow are imported here (no TensorFlow).
"""

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import numpy as np
from PIL import Image

from bench import provenance

CAMVID_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "shared", "data", "camvid")
# The tests' tiny `demo` (tests/conftest.py `exported_demo`): 2 steps train in well under a minute.
TINY = ("model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=64,data.max_examples=8,train.batch_size=2")
TRAIN, EVALUATE, PREDICT, EXPORT = ("deeplab_tf.cli.train", "deeplab_tf.cli.evaluate", "deeplab_tf.cli.predict",
                                    "export.export_saved_model")
TIMEOUT = 1500  # seconds any one command may take before it is killed
MAX_KEPT_LINES = 400  # of a command's output kept in --out (first and last halves)

# Run by the checkout's Python: loads an export, calls one signature once, prints "PROBE {json}"
# with the outputs' shapes or the error, the call's seconds and the peak memory it added.
PROBE = r"""
import json, sys, time
import numpy as np, tensorflow as tf
export_dir, signature_name, input_name, spec = sys.argv[1:]
signature = tf.saved_model.load(export_dir).signatures[signature_name]
if input_name == "images":
    value = tf.constant(np.zeros(json.loads(spec), np.uint8))
else:
    with open(spec, "rb") as f:
        value = tf.constant([f.read()])
def mib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # VmHWM := VmRSS
resident, start = mib("VmRSS"), time.perf_counter()
try:
    answer = {"outputs": {k: list(v.shape) for k, v in signature(**{input_name: value}).items()}}
except Exception as error:
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    lines = [line for line in lines if line and not line.startswith("[[")] or [""]  # not the op context
    said = next((line for line in lines if "assertion failed" in line), lines[-1])
    answer = {"error": f"{type(error).__name__}: {said}"}
answer.update(call_seconds=round(time.perf_counter() - start, 3), call_peak_added_mib=round(mib("VmHWM") - resident, 1))
print("PROBE " + json.dumps(answer), flush=True)
"""


@dataclasses.dataclass
class Outcome:
    """What one child process did: `exit` is its status (128 + signal if killed by one; None for
    a case not run), `output` what it printed (at most MAX_KEPT_LINES of it)."""

    command: str
    exit: int | None
    lines: int
    longest_line: int
    error_line: str
    key_line: str
    seconds: float
    peak_rss_mib: float
    output: list[str]


@dataclasses.dataclass
class Row:
    """One row of the table: case `key` and `title`, the command that shows the fault, its
    outcome and the case's check of the result."""

    key: str
    title: str
    outcome: Outcome
    check: str


class SetupFailed(Exception):
    """The shared run or export could not be made: cases needing it are not run."""


class Child:
    """A command started in the background, its output (stdout and stderr) going to `log`;
    `shown` is the command as the table shows it, `names` the placeholders of its paths. It is
    reaped with `os.wait4` (never Popen.poll/wait), for its own resource usage."""

    def __init__(self, argv: list[str], cwd: str, env: dict, log: str, shown: str, names: dict[str, str]):
        self.log, self.shown, self.names, self.started = log, shown, names, time.perf_counter()
        self.end = None  # (wait status, resource usage, time) once reaped
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def text(self) -> str:
        """Returns what it has printed so far."""
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def ended(self) -> bool:
        """Returns whether it has ended, reaping it the first time."""
        if self.end is None:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.end = status, usage, time.perf_counter()
                self.process.returncode = os.waitstatus_to_exitcode(status)
        return self.end is not None

    def wait_for(self, pattern: str, timeout: float) -> bool:
        """Returns True once a line of its output matches `pattern`, False if it ends or
        `timeout` seconds pass first."""
        regex, deadline = re.compile(pattern, re.M), time.monotonic() + timeout
        while time.monotonic() < deadline:
            if regex.search(self.text()):
                return True
            if self.ended():
                return bool(regex.search(self.text()))
            time.sleep(1)
        return False

    def kill(self) -> None:
        """Sends SIGKILL (kill -9) unless it has ended."""
        if not self.ended():
            os.kill(self.process.pid, signal.SIGKILL)

    def finish(self, timeout: float = TIMEOUT) -> Outcome:
        """Waits for it to end (killing it after `timeout` seconds) and returns its Outcome."""
        deadline = time.monotonic() + timeout
        while not self.ended():
            if time.monotonic() > deadline:
                self.kill()
            time.sleep(0.2)
        status, usage, ended = self.end
        code = os.waitstatus_to_exitcode(status)
        return outcome_of(self.shown, 128 - code if code < 0 else code, self.text(), ended - self.started,
                          usage.ru_maxrss / 1024, self.names)


def outcome_of(command: str, code: int | None, text: str, seconds: float, peak_mib: float,
               names: dict[str, str]) -> Outcome:
    """Returns the Outcome of a command that printed `text`, its paths shortened by `names`. Lines
    end at "\\n" only, as in a log file (a progress bar redrawn with "\\r" stays one line)."""
    raw = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []
    lines = [shorten(line, names) for line in raw]
    errors = [line for line in lines if mentions_error(line)]
    kept = lines if len(lines) <= MAX_KEPT_LINES else (
        lines[:MAX_KEPT_LINES // 2] + [f"... {len(lines) - MAX_KEPT_LINES} lines left out ..."]
        + lines[-MAX_KEPT_LINES // 2:])
    return Outcome(command, code, len(lines), max(map(len, raw), default=0),
                   errors[0] if errors else (lines[-1] if lines else ""), key_line(lines), round(seconds, 1),
                   round(peak_mib, 1), [line[:3000] for line in kept])


def mentions_error(line: str) -> bool:
    """Returns whether `line` contains "error" (any case; not "errors", as in TensorFlow's oneDNN
    notice on round-off errors) and is not one of TensorFlow's own C++ log lines (`E0000 12:00:00...`,
    such as "failed call to cuInit: ... CUDA error")."""
    return bool(re.search(r"error(?!s)", line, re.I)) and not re.match(r"[IWEF]\d{4} \d\d:\d\d:\d\d", line)


def key_line(lines: list[str]) -> str:
    """Returns the line that says what happened: the first `error:` line (with the last line of
    the output when it ends in ":", as TensorFlow's multi-line errors do), else the last exception
    line of a traceback, else a CHECK failure, else the first line `mentions_error`, else the last
    line."""
    rules = (
        lambda line: line.startswith("error:"),
        lambda line: re.match(r"^[\w.]*(Error|Exception)\b.*:", line),
        lambda line: "Check failed" in line,
        mentions_error,
    )
    for number, rule in enumerate(rules):
        found = [line for line in lines if rule(line)]
        if found:
            line = found[-1] if number == 1 else found[0]
            return f"{line} ... {lines[-1]}" if number == 0 and line.endswith(":") and line != lines[-1] else line
    return lines[-1] if lines else ""


class Bench:
    """One checkout under test: runs its commands and holds the shared run, export and images."""

    def __init__(self, repo: str, root: str):
        self.repo, self.root = os.path.abspath(repo), root
        self.python = os.path.join(self.repo, ".venv", "bin", "python")
        self.env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
        self.env.update(
            PYTHONPATH=self.repo, DEEPLAB_TF_AUTOTUNE="0", TFDS_DATA_DIR=self.path("tfds"),
            XDG_CACHE_HOME=self.path("cache"), KERAS_HOME=self.path("keras"), MPLCONFIGDIR=self.path("matplotlib"),
        )
        self.logs = self.folder("logs")
        self.setup: list[Outcome] = []
        self._locks = {name: threading.Lock() for name in ("run", "export", "images")}
        self._made: dict[str, str | None] = {}

    def path(self, *parts: str) -> str:
        """Returns ROOT/parts..., creating its parent folder."""
        path = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def folder(self, *parts: str) -> str:
        """Returns the new empty folder ROOT/parts...."""
        path = self.path(*parts)
        os.makedirs(path)
        return path

    def start(self, args: list[str], names: dict[str, str]) -> Child:
        """Starts `python ARGS` (args after the interpreter) in the background; `names` maps
        paths to the placeholders the shown command uses."""
        names = {**names, TINY: "TINY", self.root: "TMP"}
        shown = shlex.join(["python", *(shorten(arg, names) for arg in args)])
        descriptor, log = tempfile.mkstemp(suffix=".log", dir=self.logs)
        os.close(descriptor)
        return Child([self.python, *args], self.repo, self.env, log, shown, names)

    def run(self, args: list[str], names: dict[str, str], timeout: float = TIMEOUT) -> Outcome:
        """Runs `python ARGS` to its end and returns its Outcome."""
        return self.start(args, names).finish(timeout)

    def shared(self, name: str, make) -> str:
        """Returns the shared thing `name`, made by `make()` -> (path, Outcome or None) the first
        time; raises SetupFailed when making it failed (then or earlier)."""
        with self._locks[name]:
            if name not in self._made:
                path, outcome = make()
                if outcome:
                    self.setup.append(outcome)
                self._made[name] = path if outcome is None or outcome.exit == 0 else None
            if self._made[name] is None:
                raise SetupFailed(f"the shared {name} could not be made (see setup)")
            return self._made[name]

    def run_dir(self) -> str:
        """Returns the shared tiny demo run (trained for 2 steps): read it, or copy it to change it."""
        def make():
            path = self.path("shared", "run")
            return path, self.run(train_args(path, f"{TINY},train.steps=2"), {path: "RUN"})
        return self.shared("run", make)

    def export_dir(self) -> str:
        """Returns the shared export of `run_dir` (default signatures: serving_default takes
        image_bytes, serving_image_tensor takes images)."""
        def make():
            run, path = self.run_dir(), self.path("shared", "export")
            return path, self.run(export_args(run, path), {run: "RUN", path: "EXPORT"})
        return self.shared("export", make)

    def images_dir(self) -> str:
        """Returns the shared folder of 3 small PNG photos (img0.png ... img2.png)."""
        def make():
            path = self.folder("shared", "images")
            for number in range(3):
                write_photo(os.path.join(path, f"img{number}.png"), seed=number)
            return path, None
        return self.shared("images", make)


def export_args(checkpoint: str, export_dir: str, *more: str) -> list[str]:
    """Returns the arguments exporting the tiny demo `checkpoint` to `export_dir` (with the
    training's overrides, as the older checkout needs them)."""
    return ["-m", EXPORT, "--experiment=demo", f"--checkpoint={checkpoint}", f"--export_dir={export_dir}",
            f"--override={TINY}", *more]


def train_args(model_dir: str, overrides: str) -> list[str]:
    """Returns the arguments training `demo` into `model_dir` with `overrides`."""
    return ["-m", TRAIN, "--experiment=demo", f"--model_dir={model_dir}", f"--override={overrides}"]


def predict_args(saved_model: str, inputs: str, output: str) -> list[str]:
    """Returns the arguments of predict."""
    return ["-m", PREDICT, f"--saved_model={saved_model}", f"--input={inputs}", f"--output={output}"]


def shorten(text: str, names: dict[str, str]) -> str:
    """Returns `text` with each key of `names` (a path, the overrides, a script) replaced by its
    value, longest first."""
    for key in sorted(names, key=len, reverse=True):
        text = text.replace(key, names[key])
    return text


def write_photo(path: str, seed: int, size: tuple[int, int] = (48, 64)) -> None:
    """Writes a random-coloured blocky RGB image of `size` (height, width); the format follows the
    extension of `path`."""
    blocks = np.random.default_rng(seed).integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    Image.fromarray(blocks.repeat(8, axis=0).repeat(8, axis=1)).save(path)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """Returns a PNG chunk: length, `kind`, `body`, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_black_png(path: str, width: int, height: int) -> None:
    """Writes a valid all-black 8-bit RGB PNG of width x height, compressed row by row (20000 x
    20000 takes about 1.2 MB and a few seconds, never the 1.2 GB of pixels)."""
    compressor, row = zlib.compressobj(6), bytes(1 + 3 * width)  # each row: filter byte 0, pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b""))


def digests(folder: str) -> dict[str, tuple[str, int]]:
    """Returns {path relative to `folder`: (sha256, modification time in ns)} of every file under
    `folder` ({} if none)."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return found


def compare(before: dict, after: dict) -> str:
    """Returns how the files of `before` fared in `after` (both `digests`): "all N unchanged", or
    the changed, rewritten (same bytes, written again), gone and added ones."""
    common = [path for path in before if path in after]
    changed = sorted(path for path in common if after[path][0] != before[path][0])
    rewritten = sorted(path for path in common if after[path][0] == before[path][0] and after[path] != before[path])
    gone, added = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    if not (changed or rewritten or gone or added):
        return f"all {len(before)} unchanged"
    parts = [f"{label} {len(paths)}: {', '.join(paths[:4])}{' ...' if len(paths) > 4 else ''}"
             for label, paths in (("changed", changed), ("rewritten (same bytes)", rewritten), ("gone", gone),
                                  ("added", added)) if paths]
    return f"of {len(before)}, " + "; ".join(parts)


def listing(folder: str) -> str:
    """Returns the sorted names under `folder` (files, and folders with a slash), or "nothing"."""
    if not os.path.isdir(folder):
        return "no folder"
    names = sorted(name + ("/" if os.path.isdir(os.path.join(folder, name)) else "") for name in os.listdir(folder))
    return ", ".join(names) or "nothing"


def copy_run(bench: Bench, case: str) -> str:
    """Returns a copy of the shared run in the case's folder, as RUN."""
    copy = bench.path(case, "run")
    shutil.copytree(bench.run_dir(), copy)
    return copy


def traceback_note(outcome: Outcome) -> str:
    """Returns "; traceback printed" when the output holds a Python traceback, else ""."""
    return "; traceback printed" if any(line.startswith("Traceback (most recent") for line in outcome.output) else ""


def flag_absent(outcome: Outcome, flag: str) -> bool:
    """Returns whether absl refused `flag` as unknown (the checkout does not have it)."""
    return any(f"Unknown command line flag '{flag}'" in line for line in outcome.output)


# --------------------------------------------------------------------------- the cases

CASES = []  # (key, title, whether it uses the shared run or export, function(bench) -> list[Row]), in table order


def case(key: str, title: str, shared: bool = True, **arguments):
    """Registers the decorated function(bench, key, title, **arguments) -> list[Row] as case `key`;
    `shared`: it uses the shared run, export or images."""
    def register(function):
        CASES.append((key, title, shared, lambda bench: function(bench, key, title, **arguments)))
        return function
    return register


def overwrite_case(bench: Bench, key: str, title: str, target: str) -> list[Row]:
    """Exports a run with --overwrite into `target` ("run": a copy of the run, exported into
    itself; "parent": the folder holding a copy of the run; "folder": a folder holding a user's
    file, exporting the shared run) and compares the target's files."""
    if target == "folder":
        run, export_dir = bench.run_dir(), bench.folder(key, "mine")
        with open(os.path.join(export_dir, "notes.txt"), "w") as f:
            f.write("the user's notes\n")
    else:
        run = copy_run(bench, key)
        export_dir = run if target == "run" else os.path.dirname(run)
    names = {export_dir: "DIR", run: "RUN"}  # the run's name wins when both are one folder
    kept = digests(export_dir)
    outcome = bench.run(export_args(run, export_dir, "--overwrite"), names)
    return [Row(key, title, outcome, f"{shorten(export_dir, names)}: {compare(kept, digests(export_dir))}; "
                                     f"holds {listing(export_dir)}")]


case("1", "export --overwrite with --export_dir = the training run", target="run")(overwrite_case)
case("1b", "export --overwrite with --export_dir = the folder holding the run", target="parent")(overwrite_case)
case("2", "export --overwrite onto a folder holding a user's file", target="folder")(overwrite_case)


@case("3", "predict with --output = --input (a folder of PNGs)")
def predict_into_input(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts a copy of the images into their own folder; checks the source images."""
    export, images = bench.export_dir(), bench.path(key, "images")
    shutil.copytree(bench.images_dir(), images)
    kept = digests(images)
    outcome = bench.run(predict_args(export, images, images), {export: "EXPORT", images: "DIR"})
    return [Row(key, title, outcome, f"source images: {compare(kept, digests(images))}")]


@case("4", "predict on a.png and a.jpg (same stem)")
def predict_same_stem(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts a.png and a.jpg (different pictures); lists the outputs."""
    export, images, output = bench.export_dir(), bench.folder(key, "images"), bench.path(key, "out")
    write_photo(os.path.join(images, "a.png"), seed=10)
    write_photo(os.path.join(images, "a.jpg"), seed=11)
    outcome = bench.run(predict_args(export, images, output), {export: "EXPORT", images: "DIR", output: "OUT"})
    labels = [name for name in os.listdir(output) if not name.endswith("_overlay.png")] if os.path.isdir(output) else []
    return [Row(key, title, outcome, f"{len(labels)} label map(s) for 2 images; OUT holds {listing(output)}")]


@case("5", "predict whose every write fails (OUT holds a folder named as each output file)")
def predict_writes_fail(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts into a folder where each output file name is taken by a folder, so every write
    fails even as root (for whom chmod 555 stops nothing); counts the files written."""
    export, images, output = bench.export_dir(), bench.images_dir(), bench.folder(key, "out")
    for name in os.listdir(images):
        stem = os.path.splitext(name)[0]
        for taken in (f"{stem}.png", f"{stem}_overlay.png"):
            os.makedirs(os.path.join(output, taken))
    outcome = bench.run(predict_args(export, images, output), {export: "EXPORT", images: "DIR", output: "OUT"})
    return [Row(key, title, outcome, f"{len(digests(output))} files written into OUT for {len(os.listdir(images))} images")]


def probe_case(bench: Bench, key: str, title: str, shape: list[int] | None = None) -> list[Row]:
    """Calls the export's serving_image_tensor with uint8 zeros of `shape` or, without a shape,
    serving_default with a 20000 x 20000 black PNG; reports the answer, or the process's death."""
    export = bench.export_dir()
    names = {PROBE: "PROBE", export: "EXPORT"}
    if shape:
        signature, name, spec = "serving_image_tensor", "images", json.dumps(shape)
    else:
        signature, name, spec = "serving_default", "image_bytes", bench.path(key, "huge.png")
        write_black_png(spec, 20000, 20000)
        names[spec] = "HUGE.png"
    outcome = bench.run(["-c", PROBE, export, signature, name, spec], names)
    answers = [json.loads(line[len("PROBE "):]) for line in outcome.output if line.startswith("PROBE ")]
    if not answers:
        return [Row(key, title, outcome, "process died, no answer")]
    answer = answers[0]
    said = (f"refused: {answer['error']}" if "error" in answer
            else "answered " + ", ".join(f"{k} {v}" for k, v in sorted(answer["outputs"].items())))
    cost = f"the call took {answer['call_seconds']} s and +{answer['call_peak_added_mib']} MiB peak; " if not shape else ""
    return [Row(key, title, dataclasses.replace(outcome, key_line=said), cost + ("process alive" if outcome.exit == 0 else ""))]


case("6", "serving_image_tensor given a rank-3 uint8 tensor [32, 32, 3]", shape=[32, 32, 3])(probe_case)
case("7a", "serving_image_tensor given rank 2 [32, 32]", shape=[32, 32])(probe_case)
case("7b", "serving_image_tensor given rank 5 [1, 1, 32, 32, 3]", shape=[1, 1, 32, 32, 3])(probe_case)


def rerun_training_case(bench: Bench, key: str, title: str, state: str) -> list[Row]:
    """Reruns the run's own training command on a copy whose checkpoints/checkpoint state file is
    `state` ("text": text that does not parse, "binary": bytes that are not UTF-8, "missing":
    deleted); reports the step it started at and the fate of the checkpoint files."""
    run = copy_run(bench, key)
    checkpoints = os.path.join(run, "checkpoints")
    state_file = os.path.join(checkpoints, "checkpoint")
    if state == "missing":
        os.remove(state_file)
    else:
        with open(state_file, "wb") as f:
            f.write(b"this is not a checkpoint state\n" if state == "text" else b"\x00\xff\xfe binary\n")
    kept = checkpoint_files(checkpoints)
    outcome = bench.run(train_args(run, f"{TINY},train.steps=2"), {run: "RUN"})
    return [Row(key, title, outcome, f"started at step {start_step(outcome)}; checkpoint files (ckpt-*): "
                                     f"{compare(kept, checkpoint_files(checkpoints))}")]


def checkpoint_files(folder: str) -> dict[str, tuple[str, int]]:
    """Returns the `digests` of the ckpt-* files in `folder`."""
    return {name: digest for name, digest in digests(folder).items() if name.startswith("ckpt-")}


def start_step(outcome: Outcome) -> str:
    """Returns the step a training command started at, as its output says, or "?"."""
    for pattern in (r"Resumed from \S+ at step (\d+)", r"already complete: step (\d+)", r"steps (\d+)->\d+"):
        for line in outcome.output:
            found = re.search(pattern, line)
            if found:
                return found[1] + (" (resumed)" if "Resumed" in pattern else "")
    return "? (never started)"


case("8", "train again (same command) with a checkpoints/checkpoint state file that does not parse",
     state="text")(rerun_training_case)
case("8a", "the same with a binary (not UTF-8) state file", state="binary")(rerun_training_case)
case("8b", "train again (same command) with checkpoints but no checkpoints/checkpoint state file",
     state="missing")(rerun_training_case)


@case("9", "predict with --saved_model = a folder that is not a SavedModel")
def predict_not_a_saved_model(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts with a folder holding only a text file as the SavedModel."""
    model, images, output = bench.folder(key, "not_a_model"), bench.images_dir(), bench.path(key, "out")
    with open(os.path.join(model, "readme.txt"), "w") as f:
        f.write("not a model\n")
    outcome = bench.run(predict_args(model, images, output), {model: "NOTMODEL", images: "DIR", output: "OUT"})
    return [Row(key, title, outcome, f"OUT: {listing(output)}{traceback_note(outcome)}")]


@case("10", "predict into an --output that cannot be created (under a regular file)")
def predict_output_not_creatable(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts into FILE/out where FILE is a regular file."""
    export, images, blocker = bench.export_dir(), bench.images_dir(), bench.path(key, "file")
    with open(blocker, "w") as f:
        f.write("a file\n")
    output = os.path.join(blocker, "out")
    outcome = bench.run(predict_args(export, images, output), {export: "EXPORT", images: "DIR", blocker: "FILE"})
    return [Row(key, title, outcome, f"one error line: {outcome.key_line.startswith('error:')}{traceback_note(outcome)}")]


@case("11", "export a checkpoint of another experiment (a demo run as camvid_mnv2_v3plus)")
def export_other_experiment(bench: Bench, key: str, title: str, alone: bool = False) -> list[Row]:
    """Exports the demo run as camvid_mnv2_v3plus; `alone`: its checkpoint files copied to a
    folder of their own (CKPT/ckpt-2, no config.json beside them)."""
    run, export_dir = bench.run_dir(), bench.path(key, "export")
    checkpoint, names = run, {run: "RUN", export_dir: "OUT"}
    if alone:
        folder = bench.folder(key, "ckpt")
        for name in os.listdir(os.path.join(run, "checkpoints")):
            if name.startswith("ckpt-2."):
                shutil.copy(os.path.join(run, "checkpoints", name), folder)
        checkpoint, names = os.path.join(folder, "ckpt-2"), {folder: "CKPT", export_dir: "OUT"}
    outcome = bench.run(["-m", EXPORT, "--experiment=camvid_mnv2_v3plus", f"--checkpoint={checkpoint}",
                         f"--export_dir={export_dir}"], names)
    return [Row(key, title, outcome, f"OUT: {listing(export_dir)}{traceback_note(outcome)}")]


case("11b", "the same with the checkpoint copied out of its run (CKPT/ckpt-2, no config.json)",
     alone=True)(export_other_experiment)


@case("12", "evaluate a run trained with overrides, without repeating them")
def evaluate_without_overrides(bench: Bench, key: str, title: str) -> list[Row]:
    """Evaluates the tiny run as plain `demo` (no --override)."""
    run, output = bench.run_dir(), bench.path(key, "eval")
    outcome = bench.run(["-m", EVALUATE, "--experiment=demo", f"--model_dir={run}", f"--output_dir={output}"],
                        {run: "RUN", output: "OUT"})
    return [Row(key, title, outcome, f"{eval_result(output)}{traceback_note(outcome)}")]


def eval_result(output: str) -> str:
    """Returns "eval.json written (mIoU ...)" or "no eval.json" for the evaluation folder `output`."""
    path = os.path.join(output, "eval.json")
    if not os.path.exists(path):
        return "no eval.json"
    with open(path) as f:
        results = json.load(f)
    return f"eval.json written (mIoU {results['miou']:.4f})" if "miou" in results else "eval.json written"


def camvid_case(bench: Bench, key: str, title: str, fault: str) -> list[Row]:
    """Trains 1 step of the tiny demo on a 2-pair CamVid folder whose second pair has `fault`."""
    data, faulty = fake_camvid(bench.folder(key, "camvid"), fault)
    run = bench.path(key, "run")
    outcome = bench.run(train_args(run, f"data.dataset=camvid_folder,data.data_dir={data},{TINY},train.steps=1"),
                        {data: "CAMVID", run: "RUN"})
    error = next((number for number, line in enumerate(outcome.output) if line.startswith("error:")), None)
    said = outcome.output[error:] if error is not None else []
    named = any(os.path.relpath(faulty, data) in line for line in said)
    wrapped = any("iterator" in line.lower() for line in said)
    return [Row(key, title, outcome, f"the error ({len(said)} lines) names the file: {named}; "
                                     f"holds tf.data iterator text: {wrapped}{traceback_note(outcome)}")]


def fake_camvid(folder: str, fault: str) -> tuple[str, str]:
    """Writes a CamVid folder in the SegNet layout into `folder`: 2 train pairs (val the same)
    cropped to 72x96 from the real CamVid, the second with `fault` ("label_value": a patch of
    value 200; "truncated_image": its image cut to half its bytes; "rgb_label": its label
    colour-coded in RGB). Returns (folder, the faulty file)."""
    with open(os.path.join(CAMVID_DIR, "train.txt")) as f:
        pairs = [line.split() for line in f][:2]
    for image, label in pairs:
        for name in (image, label):
            os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
            Image.open(os.path.join(CAMVID_DIR, name)).crop((0, 0, 96, 72)).save(os.path.join(folder, name))
    for split in ("train", "val"):
        with open(os.path.join(folder, f"{split}.txt"), "w") as f:
            f.writelines(f"{image} {label}\n" for image, label in pairs)
    image, label = (os.path.join(folder, name) for name in pairs[1])
    if fault == "truncated_image":
        with open(image, "rb") as f:
            data = f.read()
        with open(image, "wb") as f:
            f.write(data[:len(data) // 2])
        return folder, image
    classes = np.array(Image.open(label))
    if fault == "label_value":
        classes[:8, :8] = 200
        Image.fromarray(classes).save(label)
    else:  # SegNet's colours of the 11 classes and void, as in the CamVid README
        palette = np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                            (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                            (0, 128, 192), (0, 0, 0)], np.uint8)
        Image.fromarray(palette[classes]).save(label)
    return folder, label


case("13", "train on a CamVid folder with a label value 200", shared=False, fault="label_value")(camvid_case)
case("14", "train on a CamVid folder with a truncated image PNG", shared=False, fault="truncated_image")(camvid_case)
case("15", "train on a CamVid folder with an RGB (colour-coded) label PNG", shared=False, fault="rgb_label")(camvid_case)


def bad_value_case(bench: Bench, key: str, title: str, override: str) -> list[Row]:
    """Trains `demo` with one out-of-range `override`; checks what the model dir holds after."""
    run = bench.path(key, "run")
    outcome = bench.run(train_args(run, override), {run: "RUN"})
    return [Row(key, title, outcome, f"RUN: {listing(run)}{traceback_note(outcome)}")]


case("16", "train --override=train.steps=-5", shared=False, override="train.steps=-5")(bad_value_case)
case("17", "train --override=data.crop_size=0", shared=False, override="data.crop_size=0")(bad_value_case)
case("18", "train --override=train.batch_size=0", shared=False, override="train.batch_size=0")(bad_value_case)
case("19a", "serving_default given a real 20000x20000 PNG (1.2 MB)")(probe_case)


@case("19b", "predict on a real 20000x20000 PNG (1.2 MB)")
def predict_huge_png(bench: Bench, key: str, title: str) -> list[Row]:
    """Predicts one 20000 x 20000 black PNG; the table gives its seconds and peak memory."""
    export, images, output = bench.export_dir(), bench.folder(key, "images"), bench.path(key, "out")
    write_black_png(os.path.join(images, "huge.png"), 20000, 20000)
    outcome = bench.run(predict_args(export, images, output), {export: "EXPORT", images: "DIR", output: "OUT"})
    return [Row(key, title, outcome, f"{outcome.seconds} s, peak RSS {outcome.peak_rss_mib:.0f} MiB; OUT: {listing(output)}")]


case("20a", "serving_image_tensor given 1 channel [1, 32, 32, 1]", shape=[1, 32, 32, 1])(probe_case)
case("20b", "serving_image_tensor given 4 channels [1, 32, 32, 4]", shape=[1, 32, 32, 4])(probe_case)


@case("21", "start-up noise of a successful evaluate; 22: its progress bar in a log file")
def evaluate_output(bench: Bench, key: str, title: str) -> list[Row]:
    """Evaluates the tiny run (with its overrides, which both checkouts accept) into a log file,
    then again with --verbose. Rows 21 (lines before evaluate's own first line, the progress
    line), 21v (the same with --verbose) and 22 (longest line of the log)."""
    run, output = bench.run_dir(), bench.path(key, "eval")
    args = ["-m", EVALUATE, "--experiment=demo", f"--model_dir={run}", f"--override={TINY}", f"--output_dir={output}"]
    names = {run: "RUN", output: "OUT"}
    quiet = bench.run(args, names)
    written = eval_result(output)
    verbose = bench.run([*args, "--verbose"], names)
    draws = sum(line.count("img/s") for line in quiet.output)
    return [
        Row("21", "start-up noise: lines before a successful evaluate's first own line", quiet,
            f"{noise(quiet)} lines before its first progress line; {written}"),
        Row("21v", "the same evaluate with --verbose", verbose,
            "flag absent" if flag_absent(verbose, "verbose") else f"{noise(verbose)} lines before its first progress line"),
        Row("22", "evaluate's progress in a log file (stdout and stderr to a file)", quiet,
            f"longest line {quiet.longest_line} characters; {draws} progress reports in {quiet.lines} lines"),
    ]


def noise(outcome: Outcome) -> int | str:
    """Returns how many lines came before the first line of evaluate's progress ("img/s")."""
    return next((number for number, line in enumerate(outcome.output) if "img/s" in line), "all")


@case("23", "training that diverges (train.base_learning_rate=1e30)", shared=False)
def train_nan(bench: Bench, key: str, title: str) -> list[Row]:
    """Trains the tiny demo 3 steps at a learning rate of 1e30."""
    run = bench.path(key, "run")
    outcome = bench.run(train_args(run, f"{TINY},train.steps=3,train.base_learning_rate=1e30"), {run: "RUN"})
    return [Row(key, title, outcome, f"checkpoints: {listing(os.path.join(run, 'checkpoints'))}{traceback_note(outcome)}")]


@case("24", "a second training on a model dir in training; 24k: a third after kill -9 of the first", shared=False)
def second_training(bench: Bench, key: str, title: str) -> list[Row]:
    """Starts a long training (A), then the same command (B) once A trains; B is killed if it
    trains too. Then A is killed with SIGKILL and the command is started again (C): it must get
    past the lock (print its Training line), then it is killed too."""
    run = bench.path(key, "run")
    args = train_args(run, f"{TINY},train.steps=1000")
    training = r"^Training demo"
    first = bench.start(args, {run: "RUN"})
    first_trains = first.wait_for(training, TIMEOUT)
    second = bench.start(args, {run: "RUN"})
    second_trains = second.wait_for(training, TIMEOUT)
    second.kill()
    second_outcome = second.finish()
    first.kill()
    first.finish()
    third = bench.start(args, {run: "RUN"})
    third_trains = third.wait_for(training, TIMEOUT)
    third.kill()
    third_outcome = third.finish()
    killed = " (killed by the bench once it trained)"
    return [
        Row(key, "a second training on a model dir while the first trains", training_line(second_outcome),
            f"first trained: {first_trains}; second trained alongside it: {second_trains}"
            + (killed if second_trains else "")),
        Row("24k", "the same command after kill -9 of the first (is the lock stale?)", training_line(third_outcome),
            f"third trained: {third_trains}" + (killed if third_trains else "")),
    ]


def training_line(outcome: Outcome) -> Outcome:
    """Returns `outcome` with its "Training ..." line as the key line, if it printed one."""
    line = next((line for line in outcome.output if line.startswith("Training ")), None)
    return dataclasses.replace(outcome, key_line=line) if line else outcome


# --------------------------------------------------------------------------- running and the table

def run_case(bench: Bench, key: str, title: str, function) -> list[Row]:
    """Returns the rows of one case, or one row saying why it could not run."""
    try:
        return function(bench)
    except SetupFailed as error:
        return [Row(key, title, outcome_of("(not run)", None, str(error), 0, 0, {}), f"not run: {error}")]


def make_shared(bench: Bench) -> None:
    """Makes the shared images, run and export (a failure is recorded in `bench.setup`)."""
    try:
        bench.images_dir()
        bench.export_dir()
    except SetupFailed:
        pass


def run_all(repo: str, selected: set[str] | None, jobs: int, keep: bool) -> dict:
    """Runs the selected cases (all if None) against `repo`, `jobs` at a time; returns the record
    written to --out."""
    root = tempfile.mkdtemp(prefix="fault_cases-")
    print(f"temporary folder {root}", file=sys.stderr)
    bench, started = Bench(repo, root), time.perf_counter()
    chosen = [entry for entry in CASES if selected is None or entry[0] in selected]
    try:
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            if any(shared for _, _, shared, _ in chosen):  # made first, while the other cases run
                pool.submit(make_shared, bench)
            futures = {key: pool.submit(run_case, bench, key, title, function)  # those without shared things first
                       for key, title, shared, function in sorted(chosen, key=lambda entry: entry[2])}
            for key, future in futures.items():
                future.add_done_callback(lambda _, key=key: print(f"case {key} done", file=sys.stderr))
            rows = [row for key, *_ in chosen for row in futures[key].result()]
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "repo": os.path.abspath(repo), "commit": provenance.commit(repo) or "", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1), "jobs": jobs, "tiny_overrides": TINY,
        "setup": [dataclasses.asdict(outcome) for outcome in bench.setup],
        "rows": [dataclasses.asdict(row) for row in rows],
    }


def cell(row: dict | None) -> str:
    """Returns a table cell for a recorded row: exit status, seconds, lines, the check and the key line."""
    if row is None:
        return "(not run)"
    outcome = row["outcome"]
    key = outcome["key_line"]
    key = key if len(key) <= 240 else f"{key[:80]} ... {key[-150:]}"  # a long line's end says most
    lines = f"{outcome['lines']} line{'' if outcome['lines'] == 1 else 's'}"
    text = (f"exit {outcome['exit']}, {outcome['seconds']:.0f} s, {lines}; {row['check']}"
            + (f"; `{key.replace('`', chr(39))}`" if key else ""))
    return text.replace("|", "\\|").replace("\n", " ")


def table(before: dict, after: dict) -> str:
    """Returns the markdown before/after table of two records of `run_all`."""
    rows_before, rows_after = ({row["key"]: row for row in record["rows"]} for record in (before, after))
    keys = list(dict.fromkeys([*rows_before, *rows_after]))
    lines = [
        f"Before: {before['commit']} ({before['seconds']:.0f} s in all); after: {after['commit']} "
        f"({after['seconds']:.0f} s in all); {before['jobs']} cases at a time under `nice -n 15` (a case's seconds "
        f"include the others' load). TINY = `{before['tiny_overrides']}`; RUN = a 2-step demo run with TINY; "
        f"EXPORT = its export; PROBE = loads EXPORT with tf.saved_model.load and calls the signature with uint8 zeros "
        f"of the shape given (or the bytes of the file).",
        "",
        f"| case | command | before ({before['commit']}) | after ({after['commit']}) |",
        "|---|---|---|---|",
    ]
    for key in keys:
        row = rows_before.get(key) or rows_after[key]
        command = (row["outcome"]["command"] or "").replace("|", "\\|")
        lines.append(f"| {key}. {row['title']} | `{command}` | {cell(rows_before.get(key))} | {cell(rows_after.get(key))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", help="checkout to run the cases against (its .venv/bin/python runs them)")
    parser.add_argument("--out", help="JSON file to write the record to")
    parser.add_argument("--cases", help="comma-separated case keys to run (default: all)")
    parser.add_argument("--jobs", type=int, default=3, help="cases run at a time")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--table", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"), help="print the markdown table")
    args = parser.parse_args()
    if args.table:
        records = []
        for path in args.table:
            with open(path) as f:
                records.append(json.load(f))
        sys.stdout.write(table(*records))
        return
    if not (args.repo and args.out):
        parser.error("give --repo and --out (or --table BEFORE_JSON AFTER_JSON)")
    record = run_all(args.repo, set(args.cases.split(",")) if args.cases else None, args.jobs, args.keep)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}: {len(record['rows'])} rows in {record['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
