"""`python -m deeplab_tf.cli.prepare_data` as a user runs it: its errors name its own flags
(--manual_dir, --tfds_data_dir), not the experiment fields they stand for."""

import re

import cv2
import numpy as np


def write_camvid(folder):
    """Writes a CamVid folder in the SegNet layout with one 40x40 pair in train and val."""
    for sub in ("train", "trainannot"):
        (folder / sub).mkdir(parents=True)
    cv2.imwrite(str(folder / "train" / "a.png"), np.zeros((40, 40, 3), np.uint8))
    cv2.imwrite(str(folder / "trainannot" / "a.png"), np.full((40, 40), 3, np.uint8))
    for split in ("train", "val"):
        (folder / f"{split}.txt").write_text("train/a.png trainannot/a.png\n")


def test_no_manual_dir_is_said_as_the_flag(run_command, tmp_path):
    tfds = tmp_path / "tfds"
    result = run_command("deeplab_tf.cli.prepare_data", "--dataset=camvid", f"--tfds_data_dir={tfds}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(rf"error: camvid/[\d.]+ is not prepared in {re.escape(str(tfds))}\. Set --manual_dir \(the "
                        r"TFDS manual dir\) to the folder holding its files, e\.g\. --manual_dir=PATH\.",
                        result.stderr.splitlines()[0])
    assert "data.data_dir" not in result.stderr


def test_another_manual_dir_for_prepared_records_is_said_as_the_flags(run_command, tmp_path):
    tfds, first, second = tmp_path / "tfds", tmp_path / "first", tmp_path / "second"
    write_camvid(first)
    write_camvid(second)
    prepared = run_command("deeplab_tf.cli.prepare_data", "--dataset=camvid", f"--manual_dir={first}",
                           f"--tfds_data_dir={tfds}")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    result = run_command("deeplab_tf.cli.prepare_data", "--dataset=camvid", f"--manual_dir={second}",
                         f"--tfds_data_dir={tfds}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(rf"error: camvid/[\d.]+ is already prepared in \S+ from {re.escape(str(first))}, but "
                        rf"--manual_dir is now {re.escape(str(second))}\. Delete \S+ to prepare it from the new "
                        r"folder, or point TFDS_DATA_DIR \(or --tfds_data_dir\) elsewhere\.\n", result.stderr)
