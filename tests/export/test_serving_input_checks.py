"""The signatures validate their inputs and no request kills the server (issue 20, principle 3).

Every request kind of `bench.request_kinds` is sent to the `exported_demo` export in a child
process, with oneDNN's kernels and with Eigen's (TF_ENABLE_ONEDNN_OPTS=0), so a request that
aborts the process fails the test instead of ending the session: each invalid kind must fail
with an InvalidArgumentError saying what was expected and what came, each valid one (tiny images
included) must give labels at its own size. Headers of huge images are refused fast and without
decoding; an export of fixed batch and input size checks both; a short soak sends a few hundred
mixed requests from several threads (`bench.serving_soak`, whose full run is a bench).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from bench.request_kinds import Request, encode, fake_bmp, fake_jpeg, fake_png, invalid_requests, scene, valid_requests
from export.serving import ServingOptions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDRESS_SPACE = 16 * 2**30  # a child that tries to decode a fabricated huge image fails to allocate, not the machine
RUN_KINDS = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
    import tensorflow as tf
    from bench.request_kinds import invalid_requests, signature_taking, valid_requests
    from bench.serving_soak import outcome, send
    loaded = tf.saved_model.load(sys.argv[1])
    for request in valid_requests() + invalid_requests():
        outputs, error = send((request, signature_taking(loaded, request.input), request.tensor()))
        shape = list(outputs["labels"].shape) if outputs else None
        result = outcome(request, outputs, error, outputs)
        print(json.dumps({"name": request.name, "outcome": result, "labels": shape}), flush=True)
    """
)


def run_child(args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python args...` from the repository root with `env` added; returns the finished process."""
    return subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def death(process: subprocess.CompletedProcess) -> str:
    """Returns how a child ended when it did not exit normally ("" if it did)."""
    if process.returncode < 0:
        return f"killed by {signal.Signals(-process.returncode).name}"
    return "" if process.returncode in (0, 1) else f"exit status {process.returncode}: {process.stderr[-2000:]}"


def image_size(request: Request) -> tuple:
    """Returns the (height, width) of the images of a valid request."""
    if request.input == "images":
        return request.value.shape[1:3]
    data = request.value[0]
    if request.input == "examples":
        data = tf.io.parse_single_example(data, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})["image/encoded"]
    return tuple(tf.io.decode_image(data, expand_animations=False).shape[:2])


@pytest.fixture(scope="module")
def loaded(exported_demo):
    return tf.saved_model.load(str(exported_demo[2]))


@pytest.mark.parametrize("kernels", ["onednn", "eigen"])
def test_every_request_kind_in_a_child_process(exported_demo, kernels):
    env = {"TF_ENABLE_ONEDNN_OPTS": "1" if kernels == "onednn" else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = run_child(["-c", RUN_KINDS, str(exported_demo[2]), str(ADDRESS_SPACE)], env)
    results = {row["name"]: row for row in map(json.loads, process.stdout.splitlines())}
    requests = valid_requests() + invalid_requests()
    answered = [r.name for r in requests if r.name in results]
    assert not death(process), f"the server process died ({death(process)}) after {answered[-1:]}"
    assert [r.name for r in requests] == answered
    assert {name: row["outcome"] for name, row in results.items() if row["outcome"] != "ok"} == {}
    for request in valid_requests():
        assert results[request.name]["labels"] == [len(request.value), *image_size(request)], request.name


def peak_resident_mb() -> float:
    """Returns this process's peak resident memory (VmHWM) in MiB since `reset_peak_resident`."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def reset_peak_resident():
    """Resets the peak resident memory of this process to its current resident memory (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@pytest.mark.parametrize("data", [fake_png(20000, 20000), fake_bmp(20000, -20000), fake_jpeg(20000, 30000)],
                         ids=["png", "bmp", "jpeg"])
def test_huge_image_headers_are_refused_fast_without_decoding(loaded, data):
    serve = loaded.signatures["serving_default"]
    serve(image_bytes=tf.constant([encode(scene(20, 20, 0), "PNG")]))  # traced and warm
    reset_peak_resident()
    before, start = peak_resident_mb(), time.perf_counter()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"request too large: 1 image\(s\) of \d+ x 20000 pixels"):
        serve(image_bytes=tf.constant([data]))
    seconds, grown_mb = time.perf_counter() - start, peak_resident_mb() - before
    assert seconds < 0.25 and grown_mb < 16, (seconds, grown_mb)  # a 20000 x 20000 RGB image alone is 1144 MiB


def test_short_soak_in_a_child_process(exported_demo, tmp_path):
    figures_file = tmp_path / "soak.json"
    args = ["-m", "bench.serving_soak", f"--saved_model={exported_demo[2]}", "--threads=4", "--requests=300",
            "--warmup=60", f"--json={figures_file}"]
    process = run_child(args, {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert not death(process), f"the soak process died: {death(process)}"
    figures = json.loads(figures_file.read_text())
    assert figures["first_pass_failures"] == {} and figures["failures"] == {}
    assert set(figures["requests_per_kind"]) <= {r.name for r in valid_requests() + invalid_requests()}
    assert sum(figures["requests_per_kind"].values()) == 300
    assert figures["rss_growth"] < 0.10, figures["rss_mb"]
    assert process.returncode == 0, process.stdout[-2000:]


def test_fixed_batch_and_input_size_are_checked(export_variant):
    options = ServingOptions(input_types=("image_tensor", "image_bytes"), batch_size=2, input_size=(48, 64))
    loaded = tf.saved_model.load(str(export_variant("fixed_2x48x64", options)))
    tensor, encoded = loaded.signatures["serving_default"], loaded.signatures["serving_image_bytes"]
    images = np.stack([scene(48, 64, 0), scene(48, 64, 1)])
    assert tensor(images=tf.constant(images))["labels"].shape == (2, 48, 64)
    expected = r"must be uint8 \[2, 48, 64, 3\]"
    for bad, message in (
        (images[0], rf"{expected} \(RGB images\); got shape \[48 64 3\]"),  # declared fully: still checked
        (images[:1], r"must hold exactly 2 images \(the batch size of the export\); got 1"),
        (images[:, :40], rf"{expected} \(RGB images\) \(the input size of the export\); got shape \[2 40 64 3\]"),
        (images[..., :1], rf"{expected} \(RGB images\): 3 channels; got shape \[2 48 64 1\]"),
    ):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            tensor(images=tf.constant(bad))
    png = encode(images[0], "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes must hold exactly 2 images .*got 3"):
        encoded(image_bytes=tf.constant([png] * 3))
    assert encoded(image_bytes=tf.constant([encode(scene(30, 20, 0), "PNG")] * 2))["labels"].shape == (2, 30, 20)
