"""The command-line tools fail with one clear line (exit status 2) on bad input."""

import os
import subprocess
import sys

import pytest


def run_module(module, *args):
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment=camvid_mnv2", "--model_dir=MODEL"], "Did you mean 'camvid_mnv2_v3plus'"),
        (["--experiment=demo", "--model_dir=MODEL", "--override=train.stepz=3"], "Did you mean train.steps"),
        (["--experiment=camvid_mnv2_v3plus", "--model_dir=MODEL", "--override=data.data_dir=/nonexistent/camvid"],
         "/nonexistent/camvid"),
    ],
)
def test_train_refuses_bad_input_clearly(tmp_path, args, message):
    result = run_module("deeplab_tf.train", *[a.replace("MODEL", str(tmp_path / "m")) for a in args])
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
