"""Shared fixtures: the CamVid folder from ../shared, and a fresh-process SavedModel runner."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID_DIR = os.path.join(REPO_ROOT, "..", "shared", "data", "camvid")


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
    tensor_out = loaded.signatures["serving_image_tensor"](images=tf.constant(images))
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    bytes_out = loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))
    np.savez(out_file, tensor_labels=tensor_out["labels"].numpy(),
             probabilities=tensor_out["probabilities"].numpy(), bytes_labels=bytes_out["labels"].numpy())
    """
)


@pytest.fixture
def fresh_process_predict(tmp_path):
    """Returns run(export_dir, images uint8 [N,H,W,3]) -> dict of the export's outputs, computed
    by `tf.saved_model.load` in a new Python process in which the project cannot be imported:
    "tensor_labels" and "probabilities" (serving_image_tensor), "bytes_labels" (serving_default
    fed the images as PNG bytes)."""

    def run(export_dir, images):
        np.save(tmp_path / "images.npy", images)
        subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS, str(export_dir), str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
            check=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ""},
        )
        return dict(np.load(tmp_path / "out.npz"))

    return run


@pytest.fixture(scope="session")
def exported_demo(tmp_path_factory):
    """A tiny 2-step `demo` run and its SavedModel: returns (experiment, model_dir, export_dir)."""
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.trainer import train
    from experiments import get_experiment
    from export.export_saved_model import export_saved_model

    root = tmp_path_factory.mktemp("exported_demo")
    experiment = apply_overrides(
        get_experiment("demo"),
        "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=64,data.max_examples=8,train.batch_size=2,train.steps=2",
    )
    train(experiment, str(root / "run"), log=lambda line: None)
    export_saved_model(experiment, str(root / "run"), str(root / "export"), log=lambda line: None)
    return experiment, root / "run", root / "export"
