"""`camvid` on the real SegNet-layout folder (../shared/data/camvid) and on a fake one with a test split."""

import numpy as np
import tensorflow as tf

from deeplab_tf.config import DataConfig
from deeplab_tf.data import CamVidFolder, build_eval_dataset, build_train_dataset, get_source


def test_real_camvid_counts_sizes_and_label_values(camvid_tfds, read):
    builder, _, _ = camvid_tfds
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 367, "val": 101}
    for split in ("train", "val"):
        for image, label in read(builder, split).values():
            assert image.shape == (360, 480, 3) and label.shape == (360, 480)
            values = np.unique(label)
            assert ((values <= 10) | (values == 255)).all(), values
    assert builder.info.metadata["class_names"][0] == "Sky"


def test_real_camvid_matches_the_folder_source(camvid_tfds, read):
    builder, folder, _ = camvid_tfds
    stored = read(builder, "val")
    for example in CamVidFolder(folder).examples("val"):
        name = example["name"].numpy().decode()[len(folder) + 1:]
        np.testing.assert_array_equal(stored[name][0], example["image"].numpy())
        np.testing.assert_array_equal(stored[name][1], example["label"].numpy())


def test_pipeline_reads_camvid_by_name(camvid_tfds, monkeypatch):
    _, folder, data_dir = camvid_tfds
    monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
    config = DataConfig(dataset="camvid", data_dir=folder, crop_size=(65, 97), shuffle_buffer=8)
    assert get_source(config).info.num_classes == 11
    images, labels = next(iter(build_train_dataset(config, 2, normalize=lambda x: x / 255.0)))
    assert images.shape == (2, 65, 97, 3) and labels.dtype == tf.int32
    batch = next(iter(build_eval_dataset(config, "val", normalize=lambda x: x)))
    assert batch["label"].shape == (1, 360, 480)
    # Once prepared, the manual dir is no longer needed.
    assert get_source(DataConfig(dataset="camvid", max_examples=3)).examples("train").cardinality() == 3


def test_source_decodes_its_records_as_tfds_does(camvid_tfds, read, monkeypatch, check_shuffled_stream):
    """The source decodes the records itself (`records`), and the training pipeline shuffles
    them undecoded: both must give TFDS's own decoding of the stored examples."""
    _, folder, data_dir = camvid_tfds
    monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
    config = DataConfig(dataset="camvid", data_dir=folder, crop_size=(360, 480), min_scale=1.0,
                        max_scale=1.0, random_flip=False, max_examples=6, shuffle_buffer=4)
    stored = read(camvid_tfds[0], "train")
    examples = list(get_source(config).examples("train"))
    assert len(examples) == 6
    for example in examples:
        image, label = stored[example["name"].numpy().decode()]
        np.testing.assert_array_equal(example["image"].numpy(), image)
        np.testing.assert_array_equal(example["label"].numpy(), label)
    check_shuffled_stream(config, seed=1)


def test_test_split_is_built_when_listed(tmp_path, upstream, prepare, read):
    label = np.array([[0, 10, 11], [3, 11, 5]], np.uint8)
    manual = upstream.camvid_folder(str(tmp_path / "camvid"), {"train": [label] * 2, "val": [label], "test": [label] * 3})
    builder = prepare("camvid", manual)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "val": 1, "test": 3}
    stored = read(builder, "test")["test/0001TP_000002.png"][1]
    np.testing.assert_array_equal(stored, [[0, 10, 255], [3, 255, 5]])  # void 11 -> 255
