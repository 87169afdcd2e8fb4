"""Progress output: redrawn in place only on a terminal; in a log file or a pipe, a few whole lines
that arrive as they are printed."""

import io
import re
import selectors
import subprocess
import sys

from deeplab_tf.evaluation.evaluator import progress_bar


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


def test_evaluation_progress_is_redrawn_on_a_terminal_and_a_few_lines_in_a_log_file():
    """100 images, one a second: a log file gets the first, one every 30 s and the last."""
    log, terminal, unknown_total = io.StringIO(), Terminal(), io.StringIO()
    reporters = [progress_bar(100, log, interval=30), progress_bar(100, terminal, interval=30),
                 progress_bar(0, unknown_total, interval=30)]
    for done in range(1, 101):
        for report in reporters:
            report(done, float(done))
    assert "\r" not in log.getvalue()
    logged = [int(n) for n in re.findall(r"^\[[# ]{30}\] (\d+)/100  ", log.getvalue(), re.M)]
    assert logged == [1, 31, 61, 91, 100] and log.getvalue().count("\n") == 5
    unknown = [int(n) for n in re.findall(r"^(\d+) images  1\.00 img/s$", unknown_total.getvalue(), re.M)]
    assert unknown == [1, 31, 61, 91] and unknown_total.getvalue().count("\n") == 4
    redrawn = terminal.getvalue()
    assert redrawn.count("\r") == 100 and redrawn.count("\n") == 1 and redrawn.endswith("\n")
    assert redrawn.split("\r")[-1] == f"[{'#' * 30}] 100/100  1.00 img/s  ETA 0:00\n"


def test_training_progress_reaches_a_pipe_as_it_is_printed(user_env, tmp_path):
    """stdout is written line by line (not in 8 KB blocks) when it is not a terminal: the first
    line of a long training (that logs nothing else for a long time) arrives while it runs."""
    command = [sys.executable, "-m", "deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={tmp_path / 'm'}",
               "--override=model.backbone_alpha=0.35,data.crop_size=32,train.batch_size=2,train.steps=100000,"
               "train.log_every=100000,train.checkpoint_every=100000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=user_env)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            arrived = selector.select(timeout=300)
        first_line = process.stdout.readline().decode() if arrived else ""
        running = process.poll() is None
    finally:
        process.kill()
        process.wait()
    assert first_line.startswith("Training demo: steps 0->100000") and running
