"""The peers' virtualenvs: what each one installs, and creating them when missing (stdlib only).

Each peer lives in `VENV_ROOT/<name>` (default ~/.cache/deeplab_tf_bench/venvs, outside the
repo). A venv is (re)built when it is missing or its marker file records a different install
plan than `PLANS`, so editing a pin here reinstalls that peer on the next run.

An install plan is a list of steps; a step is a list of alternatives (pip argument lists) tried
in order until one succeeds. Outcomes (the alternative used, versions, `pip check`) are stored in
the marker and printed by the driver.

pip installs from the index it is configured with (pip.conf, or `PIP_INDEX_URL` /
`PIP_EXTRA_INDEX_URL` / `PIP_FIND_LINKS` in the environment, which the venvs' pip inherits): no
index is named here.
"""

import json
import os
import subprocess
import sys

DEFAULT_ROOT = os.path.join(os.path.expanduser("~"), ".cache", "deeplab_tf_bench", "venvs")
MARKER = "deeplab_tf_bench.json"

# Model Garden 2.20.0 (the newest release) pins tensorflow~=2.20.0 and tensorflow-text~=2.20.0.
# It is installed without its dependencies next to TF 2.21, plus what `official.vision.modeling`
# imports (found by importing it), so that all TF peers run the same TensorFlow.
PLANS = {
    "keras_hub": [
        [["tensorflow==2.21.0", "keras-hub==0.32.0"]],
    ],
    "model_garden": [
        [["tensorflow==2.21.0", "tf-keras==2.21.0", "pyyaml", "gin-config", "tensorflow-datasets", "scipy",
          "pycocotools", "pillow", "opencv-python-headless", "matplotlib"]],
        [["--no-deps", "tf-models-official==2.20.0"]],
    ],
    # The CPU build first, where the configured index or find-links has it (a CPU-only index in
    # PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, or a local torch-2.13.0+cpu wheel), else torch==2.13.0
    # as the configured index serves it (for Linux x86_64 a CUDA build that also pulls the CUDA
    # libraries, several GB).
    "torch": [
        [["torch==2.13.0+cpu", "numpy"],
         ["torch==2.13.0", "numpy"]],
    ],
}

# What the driver reports as each venv's versions.
REPORTED = {
    "keras_hub": ("tensorflow", "keras", "keras-hub", "numpy"),
    "model_garden": ("tensorflow", "tf-keras", "tf-models-official", "numpy"),
    "torch": ("torch", "numpy"),
}


def venv_python(root: str, name: str) -> str:
    return os.path.join(root, name, "bin", "python")


def read_marker(root: str, name: str) -> dict | None:
    try:
        with open(os.path.join(root, name, MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_current(marker: dict | None, plan: list) -> bool:
    """True when a venv's marker says it was installed with exactly `plan`."""
    return bool(marker) and marker.get("plan") == plan and marker.get("ok") is True


def _pip(python: str, args: list, log) -> bool:
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", *args]
    log(f"  $ {' '.join(command)}")
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [line for line in result.stdout.splitlines() if "is ignored: it is neither" not in line]
    for line in lines[-4:]:
        log(f"    {line}")
    return result.returncode == 0


def _versions(python: str, packages) -> dict:
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: out[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: out[p] = None\n"
            "print(json.dumps(out))")
    result = subprocess.run([python, "-c", code, *packages], stdout=subprocess.PIPE, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def ensure(name: str, root: str = DEFAULT_ROOT, reinstall: bool = False, log=print) -> dict:
    """Creates or updates the venv of peer `name`; returns its marker (ok, chosen alternatives,
    versions, pip check). Never raises for a failed install: the marker says ok=False."""
    plan = PLANS[name]
    marker = read_marker(root, name)
    if not reinstall and is_current(marker, plan) and os.path.exists(venv_python(root, name)):
        return marker
    log(f"installing {name} into {os.path.join(root, name)} (takes minutes; logged below)")
    os.makedirs(root, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", os.path.join(root, name)], check=True)
    python = venv_python(root, name)
    chosen, ok = [], True
    for step in plan:
        for alternative in step:
            if _pip(python, alternative, log):
                chosen.append(alternative)
                break
        else:
            ok = False
            break
    check = subprocess.run([python, "-m", "pip", "check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    marker = {
        "plan": plan,
        "ok": ok,
        "chosen": chosen,
        "versions": _versions(python, REPORTED[name]),
        "pip_check": check.stdout.strip().splitlines()[:20],
    }
    with open(os.path.join(root, name, MARKER), "w") as f:
        json.dump(marker, f, indent=1)
    return marker
