"""Resuming never loses a run: one training process per model dir (a lock that a killed process
does not leave behind), and checkpoints found on disk, not through the `checkpoint` state file,
so a broken or missing state file never restarts training at step 0 over them."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from deeplab_tf.training.checkpoints import resolve_checkpoint
from deeplab_tf.training.trainer import train
from tests.training.test_trainer import TINY, Interrupt, tiny_demo

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONG = 100_000  # steps: the holder trains until it is killed


def interrupt(line):
    """A `log` that stops training at its first line (once the model dir is locked and the model built)."""
    raise Interrupt


def test_a_second_training_process_is_refused_and_a_killed_one_leaves_no_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-m", "deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={tmp_path}",
         f"--override={TINY},train.steps={LONG}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO,
    )
    try:
        lines = []
        for line in holder.stdout:
            lines.append(line)
            if line.startswith("Training demo"):  # the model dir is locked
                break
        assert holder.poll() is None, "".join(lines)[-3000:]
        with pytest.raises(ValueError, match=rf"{tmp_path} is in use by another training process \(process id {holder.pid}"):
            train(tiny_demo(steps=LONG), str(tmp_path), log=interrupt)
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
    finally:
        holder.kill()
        holder.wait()
    with pytest.raises(Interrupt):  # trains: the kernel dropped the killed process's lock
        train(tiny_demo(steps=LONG), str(tmp_path), log=interrupt)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The 4-step tiny demo, trained once (ckpt-2 and ckpt-4): returns a function that copies its
    model dir into a new folder and returns that folder."""
    model_dir = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_demo(steps=4), str(model_dir), log=lambda line: None)
    return lambda: shutil.copytree(model_dir, tmp_path_factory.mktemp("copy") / "run")


def break_state_file(folder, how):
    """Leaves the `checkpoint` state file in `folder` unparsable (text or binary), empty, missing,
    or a folder."""
    state = folder / "checkpoint"
    state.unlink()
    if how == "folder":
        state.mkdir()
    elif how != "missing":
        state.write_bytes({"text": b"model_checkpoint_path: {{{", "binary": b"\x00\xff\xfe", "empty": b""}[how])


def checkpoint_files(folder) -> dict:
    """{name: bytes} of the ckpt-N files in `folder`."""
    return {path.name: path.read_bytes() for path in folder.glob("ckpt-*")}


@pytest.mark.parametrize("how", ["text", "empty", "missing", "folder"])
def test_a_broken_state_file_resumes_from_the_newest_checkpoint(finished_run, how):
    """The issue's case ("text"): an unparsable state file made training start again at step 0
    over the checkpoints."""
    model_dir = finished_run()
    folder = model_dir / "checkpoints"
    break_state_file(folder, how)
    before, lines = checkpoint_files(folder), []
    result = train(tiny_demo(steps=4), str(model_dir), log=lines.append)
    assert any(line.startswith("Resumed from") and line.endswith("ckpt-4 at step 4") for line in lines), lines
    assert any("already complete: step 4" in line for line in lines) and result["step"] == 4, lines
    assert checkpoint_files(folder) == before


def test_an_unreadable_state_file_is_set_aside_and_training_continues(finished_run):
    """A binary state file (tf.train.CheckpointManager fails on it): kept aside, and the resumed
    run writes a new one naming its checkpoints."""
    model_dir = finished_run()
    folder = model_dir / "checkpoints"
    for path in folder.glob("ckpt-4.*"):
        path.unlink()
    break_state_file(folder, "binary")
    lines = []
    result = train(tiny_demo(steps=4), str(model_dir), log=lines.append)
    assert any(line.startswith("Resumed from") and line.endswith("ckpt-2 at step 2") for line in lines), lines
    assert [line.split()[1] for line in lines if line.startswith("step ")] == ["3/4", "4/4"]
    assert tf.train.latest_checkpoint(str(folder)) == result["checkpoint"] == str(folder / "ckpt-4")
    (aside,) = folder.glob("checkpoint.unreadable-*")
    assert aside.read_bytes() == b"\x00\xff\xfe"


def test_unreadable_checkpoints_without_a_state_file_are_refused_not_overwritten(finished_run):
    model_dir = finished_run()
    folder = model_dir / "checkpoints"
    for data in folder.glob("ckpt-*.data-*"):
        data.write_bytes(b"\0" * data.stat().st_size)  # overwritten: checksums fail
    (folder / "checkpoint").unlink()
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(ValueError, match=r"No checkpoint in .*checkpoints is readable: .*ckpt-4: .*ckpt-2: .*move .* away"):
        train(tiny_demo(steps=4), str(model_dir), log=lambda line: None)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def write_checkpoints(folder, numbers):
    """Writes checkpoints ckpt-N (N in `numbers`) of one variable holding N, as training does
    (tf.train.CheckpointManager, which also writes the `checkpoint` state file)."""
    value = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(value=value), str(folder), max_to_keep=None)
    for number in numbers:
        value.assign(float(number))
        manager.save(checkpoint_number=number)


def saved_value(prefix) -> float:
    return float(tf.train.load_checkpoint(prefix).get_tensor("value/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.parametrize("how", ["text", "binary", "empty", "missing", "folder", "stale"])
def test_evaluate_and_export_find_the_newest_checkpoint_without_the_state_file(tmp_path, how):
    """`resolve_checkpoint` (evaluate, export): the newest checkpoint on disk, whatever the state
    file says ("stale": it still names ckpt-2, as after a crash between a save and its update)."""
    folder = tmp_path / "checkpoints"
    write_checkpoints(folder, [2])
    stale = (folder / "checkpoint").read_bytes()
    write_checkpoints(folder, [4])
    if how == "stale":
        (folder / "checkpoint").write_bytes(stale)
    else:
        break_state_file(folder, how)
    prefix = resolve_checkpoint(str(tmp_path))
    assert prefix == str(folder / "ckpt-4") and saved_value(prefix) == 4.0


def test_evaluate_and_export_fall_back_past_an_unreadable_checkpoint(tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    write_checkpoints(folder, [2, 4])
    data = next(folder.glob("ckpt-4.data-*"))
    data.write_bytes(b"\0" * data.stat().st_size)
    assert resolve_checkpoint(str(tmp_path)) == str(folder / "ckpt-2")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "ckpt-4 is unreadable" in lines[0], lines
    data = next(folder.glob("ckpt-2.data-*"))
    data.write_bytes(b"\0" * data.stat().st_size)
    with pytest.raises(ValueError, match=r"No checkpoint in .* is readable: .*ckpt-4: .*; .*ckpt-2: "):
        resolve_checkpoint(str(tmp_path))
