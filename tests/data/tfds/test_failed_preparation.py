"""Bad inputs fail the preparation naming the file, and leave nothing that reads as prepared.

TFDS writes into `<data_dir>/<name>/incomplete.<random>_<version>/` and renames it to
`<data_dir>/<name>/<version>/` only on success; on an exception the temporary folder is deleted.
Every corruption below is in `val`, the split written after `train`, so a half-written dataset
existed on disk when the error was raised.
"""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

LABEL = np.array([[0, 1, 2, 3], [4, 5, 11, 10], [9, 8, 7, 6]], np.uint8)


def truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def remove(path):
    os.remove(path)


def resize(path, upstream):
    upstream.gray_png(path, np.zeros((5, 4), np.uint8))


def out_of_classes(path, upstream):
    upstream.gray_png(path, np.where(LABEL == 4, 12, LABEL))


CORRUPTIONS = {
    # name: (file to damage, how, message pattern)
    "truncated_image_png": ("val/0001TP_000001.png", truncate, r"val/0001TP_000001\.png: not a readable image"),
    "truncated_label_png": ("valannot/0001TP_000000.png", truncate, r"valannot/0001TP_000000\.png: not a readable PNG label"),
    "image_without_label": ("valannot/0001TP_000001.png", remove, r"valannot/0001TP_000001\.png"),
    "label_of_another_size": ("valannot/0001TP_000000.png", resize, r"valannot/0001TP_000000\.png is 5x4 but image .* is 3x4"),
    "value_outside_classes": ("valannot/0001TP_000001.png", out_of_classes, r"valannot/0001TP_000001\.png: label values \[12\]"),
}




@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_bad_input_fails_naming_the_file_and_leaves_nothing(corruption, tmp_path, upstream, prepare, read,
                                                           nothing_prepared):
    manual = upstream.camvid_folder(str(tmp_path / "camvid"), {"train": [LABEL] * 3, "val": [LABEL] * 2})
    target, damage, message = CORRUPTIONS[corruption]
    path = os.path.join(manual, target)
    damage(path, upstream) if damage in (resize, out_of_classes) else damage(path)

    with pytest.raises((ValueError, FileNotFoundError), match=message):
        prepare("camvid", manual)
    nothing_prepared("camvid", str(tmp_path / "tfds"))

    # A later run with the file repaired prepares everything from scratch.
    upstream.camvid_folder(manual, {"train": [LABEL] * 3, "val": [LABEL] * 2})
    builder = prepare("camvid", manual)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 3, "val": 2}
    assert len(read(builder, "val")) == 2


def test_shards_are_written_in_an_incomplete_folder_that_failure_deletes(tmp_path, upstream, prepare,
                                                                        monkeypatch, nothing_prepared):
    from deeplab_tf.data.tfds.camvid import Camvid

    manual = upstream.camvid_folder(str(tmp_path / "camvid"), {"train": [LABEL] * 3, "val": [LABEL] * 2})
    data_dir = str(tmp_path / "tfds")
    seen = []
    read_label = Camvid._read_label

    def failing_read_label(self, example, size):
        if example.name.startswith("val/"):  # train's shards are on disk by now: where?
            seen.extend(os.path.relpath(os.path.join(d, f), data_dir) for d, _, fs in os.walk(data_dir) for f in fs)
            raise ValueError(f"{example.label}: simulated failure")
        return read_label(self, example, size)

    monkeypatch.setattr(Camvid, "_read_label", failing_read_label)
    with pytest.raises(ValueError, match="simulated failure"):
        prepare("camvid", manual)
    train_shards = [path for path in seen if "camvid-train.tfrecord" in path]
    assert train_shards and all(path.startswith("camvid/incomplete.") for path in train_shards), seen
    nothing_prepared("camvid", data_dir)


def test_an_interrupted_preparation_is_not_read_as_prepared(tmp_path, upstream, prepare):
    """A killed process leaves `incomplete.*`: TFDS neither reads it nor stumbles over it."""
    manual = upstream.camvid_folder(str(tmp_path / "camvid"), {"train": [LABEL], "val": [LABEL]})
    stale = tmp_path / "tfds" / "camvid" / "incomplete.ABC123_1.0.0"
    stale.mkdir(parents=True)
    (stale / "camvid-train.tfrecord-00000-of-00001").write_bytes(b"partial")
    assert not tfds.builder("camvid", data_dir=str(tmp_path / "tfds")).is_prepared()
    assert prepare("camvid", manual).info.splits["val"].num_examples == 1


def test_empty_manual_dir_says_what_to_put_where(tmp_path, prepare):
    (tmp_path / "manual").mkdir()
    with pytest.raises(FileNotFoundError, match=r"(?s)does not exist or is empty.*VOCtrainval_11-May-2012\.tar.*host\.robots"):
        prepare("voc2012_segmentation", tmp_path / "manual")
