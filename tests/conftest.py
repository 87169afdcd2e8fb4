"""Shared fixtures: the CamVid folder from ../shared, a fresh-process SavedModel runner, a command
line run as a user would (`run_command`), and the speed-tuning cache (`cache_file`, `timed`)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# No speed tuning in tests (subprocesses inherit it): models build with the fixed rules that
# tests assert, without timing candidates; tests/layers/test_autotune.py turns it on to test it.
os.environ["DEEPLAB_TF_AUTOTUNE"] = "0"
# The kernels deeplab-tf's commands run (oneDNN's where TensorFlow would run Eigen's:
# deeplab_tf/onednn_ops.py), in this process and the commands it starts alike, set before
# anything imports TensorFlow.
from deeplab_tf import onednn_ops  # noqa: E402

onednn_ops.turn_on_where_off()
CAMVID_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "camvid")


@pytest.fixture(autouse=True)
def no_op_determinism_after_a_test():
    """Turns TensorFlow's op determinism off after each test: `train(deterministic=True)` turns it
    on for the whole process, which would change `auto`'s picks in the tests that follow."""
    yield
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


@pytest.fixture(scope="session", autouse=True)
def tfds_data_dir(tmp_path_factory):
    """Keeps TFDS records prepared by tests (and their subprocesses) out of ~/tensorflow_datasets."""
    path = str(tmp_path_factory.mktemp("tensorflow_datasets"))
    previous = os.environ.get("TFDS_DATA_DIR")
    os.environ["TFDS_DATA_DIR"] = path
    yield path
    if previous is None:
        os.environ.pop("TFDS_DATA_DIR")
    else:
        os.environ["TFDS_DATA_DIR"] = previous


# Not in a user's shell: importing deeplab_tf.cli sets the first two in this process
# (`deeplab_tf.cli.flags.start_up`), a test runner may set the third (it would hide how stdout is
# buffered). The commands under test must quiet TensorFlow and tqdm, and flush lines, themselves.
NOT_IN_A_USERS_SHELL = ("TF_CPP_MIN_LOG_LEVEL", "TQDM_DISABLE", "PYTHONUNBUFFERED")


@pytest.fixture
def user_env(tmp_path) -> dict:
    """Returns this process's environment without `NOT_IN_A_USERS_SHELL`, with its own empty TFDS data
    dir (nothing prepared)."""
    env = {key: value for key, value in os.environ.items() if key not in NOT_IN_A_USERS_SHELL}
    return {**env, "TFDS_DATA_DIR": str(tmp_path / "tfds")}


@pytest.fixture
def run_command(user_env):
    """Returns run(module, *args) -> subprocess.CompletedProcess (text stdout and stderr) of
    `python -m module args` in `user_env`: a new process, as a user would run the command line."""

    def run(module, *args):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                              env=user_env)

    return run


@pytest.fixture(scope="session")
def camvid_dir():
    """Returns the path of the real CamVid folder, or skips the test saying where it was looked for."""
    if not os.path.isfile(os.path.join(CAMVID_DIR, "train.txt")):
        pytest.skip(f"CamVid not found at {os.path.abspath(CAMVID_DIR)} (expected ../shared/data/camvid)")
    return os.path.abspath(CAMVID_DIR)


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    for blocked in ("deeplab_tf", "experiments", "export"):
        sys.modules[blocked] = None  # any import of the project now fails
    import numpy as np, tensorflow as tf
    export_dir, images_file, out_file = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    images = np.load(images_file)
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    examples = [
        tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
        })).SerializeToString()
        for data in encoded
    ]
    feeds = {"images": images, "image_bytes": encoded, "examples": examples}
    out = {}
    for name, signature in loaded.signatures.items():
        (key,) = signature.structured_input_signature[1]
        for output, value in signature(**{key: tf.constant(feeds[key])}).items():
            out[f"{name}/{output}"] = value.numpy()
    np.savez(out_file, **out)
    """
)
SPINE_KEYS = {
    "tensor_labels": "serving_image_tensor/labels",
    "probabilities": "serving_image_tensor/probabilities",
    "bytes_labels": "serving_default/labels",
}


@pytest.fixture
def fresh_process_predict(tmp_path):
    """Returns run(export_dir, images uint8 [N,H,W,3]) -> dict of the export's outputs, computed
    by `tf.saved_model.load` in a new Python process in which the project cannot be imported.

    Every signature is called once, with its input built from `images`: `images` as is,
    `image_bytes` as PNG bytes, `examples` as tf.Example protos holding the PNG under
    "image/encoded". Keys are "SIGNATURE/OUTPUT"; for the default export also "tensor_labels" and
    "probabilities" (serving_image_tensor) and "bytes_labels" (serving_default)."""

    def run(export_dir, images):
        np.save(tmp_path / "images.npy", images)
        subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, str(export_dir), str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
            check=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ""},
        )
        out = dict(np.load(tmp_path / "out.npz"))
        return {**out, **{alias: out[key] for alias, key in SPINE_KEYS.items() if key in out}}

    return run


@pytest.fixture(scope="session")
def exported_demo(tmp_path_factory):
    """A tiny 2-step `demo` run and its SavedModel with every input type: returns (experiment,
    model_dir, export_dir)."""
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.training.trainer import train
    from experiments import get_experiment
    from export.export_saved_model import export_saved_model
    from export.serving import INPUT_TYPES, ServingOptions

    root = tmp_path_factory.mktemp("exported_demo")
    experiment = apply_overrides(
        get_experiment("demo"),
        "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=64,data.max_examples=8,train.batch_size=2,train.steps=2",
    )
    train(experiment, str(root / "run"), log=lambda line: None)
    options = ServingOptions(input_types=INPUT_TYPES)  # the default signatures plus serving_tf_example
    export_saved_model(experiment, str(root / "run"), str(root / "export"), options=options, log=lambda line: None)
    return experiment, root / "run", root / "export"


@pytest.fixture
def cache_file(tmp_path, monkeypatch):
    """Tuning on (`deeplab_tf.layers.autotune`), with its cache under `tmp_path`; returns the
    cache file's path (not written yet)."""
    from deeplab_tf.layers import autotune

    monkeypatch.setenv(autotune.SWITCH, "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "deeplab_tf" / "autotune.json"


@pytest.fixture
def timed(monkeypatch):
    """Counts the candidates timed: returns a list that gets one entry per run `autotune.measure`
    times. Runs are not run: each takes "1 ms", so a pick is the first candidate (ties)."""
    from deeplab_tf.layers import autotune

    runs = []
    monkeypatch.setattr(autotune, "measure",
                        lambda candidates, **_: runs.extend(candidates.values()) or dict.fromkeys(candidates, 1e-3))
    return runs
