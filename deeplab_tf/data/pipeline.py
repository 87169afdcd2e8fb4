"""tf.data input pipelines: augmented, shuffled, repeated training batches and full-size eval.

`normalize` maps float32 [..., 3] RGB pixels in 0..255 to model input (the backbone supplies it).
The training pipeline is reproducible: shuffling uses `seed`, and element i of the repeated
stream is augmented with the stateless seed (seed, i) (see `deeplab_tf.data.augment`).
"""

from typing import Callable

import tensorflow as tf

from deeplab_tf.data import augment
from deeplab_tf.data.sources import get_source

Normalize = Callable[[tf.Tensor], tf.Tensor]


def build_train_dataset(
    data_config, batch_size: int, normalize: Normalize, seed: int = 0, skip_batches: int = 0,
    num_shards: int = 1, shard_index: int = 0,
) -> tf.data.Dataset:
    """Returns an infinite dataset of training batches (images, labels), from batch
    `skip_batches` of the stream on, and of those only batches `shard_index`,
    `shard_index + num_shards`, ... (one input pipeline's share under tf.distribute).

    images: float32 [batch_size, crop_h, crop_w, 3] = normalize(augmented pixels);
    labels: int32 [batch_size, crop_h, crop_w], class indices or 255 (ignore; also padding).
    Examples of `data_config.train_split` are shuffled (`shuffle_buffer`, `seed`), repeated, then
    randomly scaled in [min_scale, max_scale], padded to `crop_size` (mean colour / 255), randomly
    cropped to `crop_size` and, if `random_flip`, flipped left-right.
    The source's undecoded records (file paths or encoded bytes; `sources.py`) are what is
    shuffled, so the buffer holds compressed examples; each is decoded with its augmentation.
    Skipping (a resumed run's steps already done) gives the batches an unskipped dataset gives
    after its first `skip_batches`: the records are dropped before decoding and augmentation,
    which is seeded by the position in the stream, so they cost only their reading.
    Sharding keeps what `dataset.shard(num_shards, shard_index)` keeps of the skipped stream's
    batches, and drops the other shards' examples before decoding as well.
    Raises ValueError for a negative `skip_batches`, `num_shards` < 1, or a `shard_index`
    outside [0, num_shards).
    """
    if skip_batches < 0:
        raise ValueError(f"skip_batches={skip_batches}: must be >= 0 (batches already trained on)")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index={shard_index} of num_shards={num_shards}: need num_shards >= 1 "
                         f"and 0 <= shard_index < num_shards")
    crop_height, crop_width = data_config.crop_size
    records, decode = get_source(data_config).records(data_config.train_split)

    def augment_example(index, record):
        example = decode(record)
        scale_seed, crop_seed, flip_seed = tf.unstack(
            tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), index]), 3)
        )
        image, label = augment.random_scale(
            example["image"], example["label"],
            data_config.min_scale, data_config.max_scale, scale_seed,
        )
        image, label = augment.pad_to_size(image, label, crop_height, crop_width)
        image, label = augment.random_crop(image, label, crop_height, crop_width, crop_seed)
        if data_config.random_flip:
            image, label = augment.random_flip_left_right(image, label, flip_seed)
        return normalize(image), tf.cast(label, tf.int32)

    dataset = records
    if data_config.shuffle_buffer > 1:
        dataset = dataset.shuffle(data_config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    skipped = skip_batches * batch_size
    dataset = dataset.repeat().enumerate().skip(skipped)
    if num_shards > 1:
        dataset = dataset.filter(lambda index, _: (index - skipped) // batch_size % num_shards == shard_index)
    dataset = dataset.map(augment_example, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def build_eval_dataset(
    data_config, split: str, normalize: Normalize, batch_size: int = 1
) -> tf.data.Dataset:
    """Returns the split at full resolution, in source order, without augmentation.

    Each element is a dict: "image" float32 [B, H, W, 3] (normalized), "pixels" uint8
    [B, H, W, 3] (original RGB), "label" int32 [B, H, W] (255 = ignore), "name" tf.string [B].
    The last batch may be smaller; batch_size > 1 needs all images of the split to share a size.
    """

    def prepare(example):
        return {
            "image": normalize(tf.cast(example["image"], tf.float32)),
            "pixels": example["image"],
            "label": tf.cast(example["label"], tf.int32),
            "name": example["name"],
        }

    dataset = get_source(data_config).examples(split)
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
