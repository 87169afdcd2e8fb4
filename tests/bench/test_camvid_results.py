"""bench/camvid_results.py: the training time of a run directory, from the trainer's event files."""

import tensorflow as tf

from bench import camvid_results


def _write_run(folder, rates):
    """Writes one run's event file: `images_per_second` at each (step, rate)."""
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for step, rate in rates:
            tf.summary.scalar("images_per_second", rate, step=step)
            tf.summary.scalar("loss", 1.0, step=step)
    writer.close()


def test_logged_training_seconds_sums_every_run_of_the_directory(tmp_path):
    train = tmp_path / "train"
    # A run cut after step 60, then resumed from the checkpoint at step 40 and finished at step 70
    # (log_every 20: the last line covers 10 steps). Batch 8.
    _write_run(train, [(20, 4.0), (40, 8.0), (60, 8.0)])
    _write_run(train, [(60, 5.0), (70, 10.0)])
    seconds, runs = camvid_results.logged_training_seconds(str(tmp_path), log_every=20, batch_size=8)
    # By hand: 20*8/4 + 20*8/8 + 20*8/8 = 80 s, then 20*8/5 + 10*8/10 = 40 s.
    assert runs == 2
    assert abs(seconds - 120.0) < 1e-3


def test_a_directory_without_event_files_has_no_logged_time(tmp_path):
    assert camvid_results.logged_training_seconds(str(tmp_path), log_every=20, batch_size=8) == (0.0, 0)


def test_run_machines_lists_each_run_and_says_when_none_was_recorded(tmp_path):
    assert camvid_results.run_machines(str(tmp_path)) == [
        "machine: not recorded (no provenance.txt: a run of an older bench/camvid.sh)"]
    (tmp_path / "provenance.txt").write_text("machine: CPU A, code 1\n\nmachine: CPU A, code 2\n")
    assert camvid_results.run_machines(str(tmp_path)) == ["machine: CPU A, code 1", "machine: CPU A, code 2"]
