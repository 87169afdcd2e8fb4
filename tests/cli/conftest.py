"""Running a command line as a user would: a new process, a user's environment."""

import os
import subprocess
import sys

import pytest

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
    `python -m module args` in `user_env`."""

    def run(module, *args):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                              env=user_env)

    return run
