"""The command-line tools fail with one clear line (exit status 2) on bad input."""

import os
import subprocess
import sys

import pytest


def run_module(module, *args, tfds_dir):
    """Runs `python -m module args` with its own empty TFDS data dir (nothing prepared)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFDS_DATA_DIR": str(tfds_dir)},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment=camvid_mnv2", "--model_dir=MODEL"], "Did you mean 'camvid_mnv2_v3plus'"),
        (["--experiment=demo", "--model_dir=MODEL", "--override=train.stepz=3"], "Did you mean train.steps"),
        (["--experiment=camvid_mnv2_v3plus", "--model_dir=MODEL", "--override=data.data_dir=/nonexistent/camvid"],
         "/nonexistent/camvid"),
        # Data the experiment needs is missing: say which files and where to put them, before
        # building the model.
        (["--experiment=voc_aspp_l", "--model_dir=MODEL"], "VOCtrainval_11-May-2012.tar"),
        (["--experiment=voc_r101_v2_msc_coco", "--model_dir=MODEL"], "train.init_checkpoint"),
    ],
)
def test_train_refuses_bad_input_clearly(tmp_path, args, message):
    result = run_module(
        "deeplab_tf.cli.train", *[a.replace("MODEL", str(tmp_path / "m")) for a in args], tfds_dir=tmp_path / "tfds"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_label_value_is_reported_with_the_file(tmp_path):
    """A label value outside the classes fails the dataset preparation with one line naming the file."""
    import cv2
    import numpy as np

    for folder in ("train", "trainannot"):
        (tmp_path / folder).mkdir()
    for name, value in (("a", 40), ("b", 3)):
        cv2.imwrite(str(tmp_path / "train" / f"{name}.png"), np.zeros((40, 40, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "trainannot" / f"{name}.png"), np.full((40, 40), value, np.uint8))
    (tmp_path / "train.txt").write_text("train/a.png trainannot/a.png\n")
    (tmp_path / "val.txt").write_text("train/b.png trainannot/b.png\n")
    result = run_module(
        "deeplab_tf.cli.train", "--experiment=camvid_mnv2_v3plus", f"--model_dir={tmp_path / 'm'}",
        f"--override=data.data_dir={tmp_path},model.backbone_alpha=0.35,data.crop_size=32,train.batch_size=1",
        tfds_dir=tmp_path / "tfds",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "trainannot/a.png: label values [40] are not classes" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_values_are_refused_at_once_before_anything_is_built(tmp_path):
    """`resolve_experiment` validates the experiment: one error, the allowed values, exit status 2,
    and nothing written to the model dir."""
    model_dir = tmp_path / "m"
    result = run_module(
        "deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}", "--override=train.steps=-5",
        tfds_dir=tmp_path / "tfds",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: Invalid experiment 'demo': train.steps=-5: the number of training steps must be at "
                      "least 1; allowed: integers >= 1"]
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()
