import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.config import DataConfig
from deeplab_tf.data.pipeline import build_eval_dataset, build_train_dataset
from deeplab_tf.data.sources import get_source

SMALL = DataConfig(crop_size=(96, 112), max_examples=12, shuffle_buffer=8)
UNAUGMENTED = dataclasses.replace(
    SMALL, min_scale=1.0, max_scale=1.0, random_flip=False, shuffle_buffer=1, max_examples=3
)


def normalize(pixels):
    return pixels / 127.5 - 1.0


def first_batch(dataset):
    return tf.nest.map_structure(lambda t: t.numpy(), next(iter(dataset)))


def raw_arrays(config, split, key):
    return np.stack([e[key] for e in get_source(config).examples(split)])


def check_train_batches(config, num_classes):
    dataset = build_train_dataset(config, batch_size=3, normalize=normalize)
    images_spec, labels_spec = dataset.element_spec
    assert images_spec.shape == (3, *config.crop_size, 3) and images_spec.dtype == tf.float32
    assert labels_spec.shape == (3, *config.crop_size) and labels_spec.dtype == tf.int32
    for images, labels in dataset.take(2):
        assert -1.0 <= images.numpy().min() and images.numpy().max() <= 1.0
        assert set(np.unique(labels)) <= set(range(num_classes)) | {255}


def test_train_batches_synthetic():
    check_train_batches(SMALL, num_classes=4)


def test_train_batches_camvid(camvid_dir):
    config = DataConfig(
        dataset="camvid_folder", data_dir=camvid_dir, crop_size=(193, 257), max_examples=2,
        shuffle_buffer=2,
    )
    check_train_batches(config, num_classes=11)


def test_train_is_deterministic_per_seed():
    first, again, other = (
        first_batch(build_train_dataset(SMALL, 4, normalize, seed=s)) for s in (5, 5, 6)
    )
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_stream_visits_the_shuffled_examples_synthetic(check_shuffled_stream):
    check_shuffled_stream(
        dataclasses.replace(UNAUGMENTED, crop_size=(128, 128), max_examples=5, shuffle_buffer=8))


def test_stream_visits_the_shuffled_examples_camvid_folder(camvid_dir, check_shuffled_stream):
    check_shuffled_stream(
        DataConfig(dataset="camvid_folder", data_dir=camvid_dir, crop_size=(360, 480), min_scale=1.0,
                   max_scale=1.0, random_flip=False, max_examples=5, shuffle_buffer=3))


def test_skipped_batches_are_the_later_batches_of_the_unskipped_stream():
    """A resumed run's input: 4 batches of 4 over 12 examples cross two reshuffled epochs."""
    unskipped = list(build_train_dataset(SMALL, 4, normalize, seed=3).take(6))
    skipped = list(build_train_dataset(SMALL, 4, normalize, seed=3, skip_batches=4).take(2))
    for expected, batch in zip(unskipped[4:], skipped):
        for a, b in zip(expected, batch):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("skip_batches", [0, 2])
def test_shards_are_every_nth_batch_of_the_stream(skip_batches):
    """Three input pipelines' shards interleave back into the one stream, resumed or not."""
    unsharded = list(build_train_dataset(SMALL, 2, normalize, seed=3).take(skip_batches + 9))[skip_batches:]
    for shard_index in range(3):
        shard = list(build_train_dataset(SMALL, 2, normalize, seed=3, skip_batches=skip_batches,
                                         num_shards=3, shard_index=shard_index).take(3))
        assert len(shard) == 3
        for expected, batch in zip(unsharded[shard_index::3], shard):
            for a, b in zip(expected, batch):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("num_shards, shard_index", [(0, 0), (2, 2), (2, -1)])
def test_bad_shard_is_refused(num_shards, shard_index):
    with pytest.raises(ValueError, match=rf"shard_index={shard_index} of num_shards={num_shards}"):
        build_train_dataset(SMALL, 2, normalize, num_shards=num_shards, shard_index=shard_index)


def test_negative_skip_is_refused():
    with pytest.raises(ValueError, match=r"skip_batches=-1"):
        build_train_dataset(SMALL, 4, normalize, skip_batches=-1)


def test_train_without_augmentation_returns_normalized_examples():
    config = dataclasses.replace(UNAUGMENTED, crop_size=(128, 128))
    images, labels = first_batch(build_train_dataset(config, 3, normalize))
    raw_images = raw_arrays(config, "train", "image").astype(np.float32)
    np.testing.assert_allclose(images, normalize(raw_images))
    np.testing.assert_array_equal(labels, raw_arrays(config, "train", "label"))


def test_train_padding_uses_ignore_label():
    config = dataclasses.replace(UNAUGMENTED, crop_size=(160, 160))
    _, labels = first_batch(build_train_dataset(config, 2, normalize))
    assert (labels[:, 128:, :] == 255).all() and (labels[:, :, 128:] == 255).all()


def test_eval_equals_raw_examples():
    config = DataConfig(max_examples=4)
    batches = list(build_eval_dataset(config, "val", normalize, batch_size=2))
    assert len(batches) == 2
    batch = batches[1]
    assert batch["image"].dtype == tf.float32 and batch["pixels"].dtype == tf.uint8
    assert batch["label"].dtype == tf.int32 and batch["name"].dtype == tf.string
    np.testing.assert_array_equal(batch["pixels"], raw_arrays(config, "val", "image")[2:])
    np.testing.assert_array_equal(batch["label"], raw_arrays(config, "val", "label")[2:])
    np.testing.assert_allclose(batch["image"], normalize(batch["pixels"].numpy().astype(np.float32)))
    assert list(batch["name"].numpy()) == [b"synthetic_shapes/val/00002", b"synthetic_shapes/val/00003"]
