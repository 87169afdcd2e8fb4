"""Input pipeline vs training speed: can tf.data feed `camvid_mnv2_v3plus` on this machine?

    python -m bench.input_pipeline --camvid=../shared/data/camvid [--tfds_data_dir=DIR]

1. Prepares CamVid with the `camvid` TFDS builder (into a temporary TFDS data dir unless
   --tfds_data_dir is given) and reports the preparation rate.
2. Input rate (images/s): the training pipeline of `deeplab_tf.data.build_train_dataset` over the
   prepared records (decode PNG, shuffle, random scale 0.5-2, pad, crop, flip, normalise), batches
   of --batch_size, at 321x321 (the experiment's crop), 513x513 and 360x480 (CamVid's size). Also
   the decode-only rate of the source.
3. Training rate (images/s): SGD steps of the `camvid_mnv2_v3plus` model (built with
   `deeplab_tf.assembly.assemble`) on random batches at the experiment's crop, then on batches from
   the real pipeline; equal rates mean the input keeps up.
4. With --resume_step=N: seconds until a run resumed at step N has its first batch, skipping the
   N batches already trained on as the trainer does (`skip_batches`: undecoded records) and as
   it did before e30d6b4 (whole batches, decoded, augmented, then dropped).
5. With --shards=N: the input rate of one worker of N (shard 0), sharded as the trainer does
   (`build_train_dataset(num_shards=N)`: the other workers' examples dropped undecoded) and as it
   did before d2e9f5a (`dataset.shard` after batching: every batch decoded and augmented).

Each rate is measured alone (it gets all cores) after --warmup batches. Prints one line per rate
and the input/training ratios; exits with status 1 if an input rate is below 2x training.
"""

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from bench import provenance
from deeplab_tf.assembly import assemble
from deeplab_tf.config import apply_overrides
from deeplab_tf.data import TfdsSource, build_train_dataset
from deeplab_tf.training.losses import masked_sparse_cross_entropy
from experiments import get_experiment

EXPERIMENT = "camvid_mnv2_v3plus"


def images_per_second(iterator, batch_size: int, warmup: int, batches: int) -> float:
    """Returns batch_size * batches / seconds to pull `batches` batches after `warmup` ones."""
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batch_size * batches / (time.perf_counter() - start)


def training_rate(parts, batches, batch_size: int, warmup: int, steps: int) -> float:
    """Returns images/s of SGD steps (momentum 0.9, masked cross-entropy) on `batches`."""
    model = parts.model
    optimizer = keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9)

    @tf.function(jit_compile=False)
    def step(images, labels):
        with tf.GradientTape() as tape:
            loss = masked_sparse_cross_entropy(labels, model(images, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    def run():
        while True:
            images, labels = next(batches)
            yield step(images, labels).numpy()

    return images_per_second(run(), batch_size, warmup, steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--camvid", default="../shared/data/camvid", help="SegNet-layout CamVid folder.")
    parser.add_argument("--tfds_data_dir", default="", help="TFDS data dir (default: a temporary one).")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5, help="Batches before timing (input).")
    parser.add_argument("--batches", type=int, default=40, help="Timed batches (input).")
    parser.add_argument("--train_steps", type=int, default=5, help="Timed SGD steps.")
    parser.add_argument("--resume_step", type=int, default=0, help="Also time resuming at this step.")
    parser.add_argument("--shards", type=int, default=1, help="Also time one worker's input of this many.")
    args = parser.parse_args()

    data_dir = args.tfds_data_dir or tempfile.mkdtemp(prefix="bench_tfds_")
    try:
        start = time.perf_counter()
        source = TfdsSource("camvid", os.path.abspath(args.camvid), data_dir)
        counts = {k: v.num_examples for k, v in source.builder.info.splits.items()}
        prepared = time.perf_counter() - start
        print(provenance.describe())
        print(f"prepared/opened camvid {counts} in {prepared:.1f} s "
              f"({sum(counts.values()) / prepared:.0f} images/s if it was prepared now)")

        experiment = apply_overrides(get_experiment(EXPERIMENT), f"data.data_dir={os.path.abspath(args.camvid)}")
        tfds_data = dataclasses.replace(experiment.data, dataset="camvid")
        os.environ["TFDS_DATA_DIR"] = data_dir  # the adapter's knob until DataConfig has tfds_data_dir
        parts = assemble(experiment)
        batch, crop = args.batch_size, experiment.data.crop_size

        decode = iter(source.examples("train").repeat().batch(1))
        rates = {"decode only (360x480 PNG + label)": images_per_second(decode, 1, args.warmup, args.batches * 2)}
        for size in (tuple(crop), (513, 513), (360, 480)):
            config = dataclasses.replace(tfds_data, crop_size=size)
            pipeline = iter(build_train_dataset(config, batch, parts.normalize, seed=0))
            rates[f"decode+augment crop {size[0]}x{size[1]}"] = images_per_second(
                pipeline, batch, args.warmup, args.batches
            )
        for name, rate in rates.items():
            print(f"input  {name:38s} {rate:8.1f} images/s")
        if args.resume_step:
            resumed = {
                "skip_batches (the trainer)": lambda: build_train_dataset(
                    tfds_data, batch, parts.normalize, seed=0, skip_batches=args.resume_step),
                "skip augmented batches": lambda: build_train_dataset(
                    tfds_data, batch, parts.normalize, seed=0).skip(args.resume_step),
            }
            for name, build in resumed.items():
                start = time.perf_counter()
                next(iter(build()))
                print(f"resume at step {args.resume_step}, {name:24s} {time.perf_counter() - start:7.1f} s "
                      f"to the first batch")
        if args.shards > 1:
            sharded = {
                "shard before decoding (the trainer)": build_train_dataset(
                    tfds_data, batch, parts.normalize, seed=0, num_shards=args.shards, shard_index=0),
                "shard augmented batches": build_train_dataset(
                    tfds_data, batch, parts.normalize, seed=0).shard(args.shards, 0),
            }
            for name, dataset in sharded.items():
                rate = images_per_second(iter(dataset), batch, args.warmup, args.batches)
                print(f"input  one worker of {args.shards}, {name:36s} {rate:8.1f} images/s")

        height, width = crop
        rng = np.random.default_rng(0)
        random_images = parts.normalize(tf.constant(rng.uniform(0, 255, (batch, height, width, 3)), tf.float32))
        random_labels = tf.constant(rng.integers(0, 11, (batch, height, width)), tf.int32)

        def repeat_random():
            while True:
                yield random_images, random_labels

        train_random = training_rate(parts, repeat_random(), batch, 2, args.train_steps)
        real = iter(build_train_dataset(tfds_data, batch, parts.normalize, seed=1))
        train_real = training_rate(parts, real, batch, 2, args.train_steps)
        print(f"train  {EXPERIMENT} SGD, batch {batch}, crop {height}x{width}, random batches {train_random:8.1f} images/s "
              f"({train_random / batch:.2f} steps/s)")
        print(f"train  {EXPERIMENT} SGD, batch {batch}, crop {height}x{width}, camvid pipeline {train_real:7.1f} images/s")
        worst = min(rate for name, rate in rates.items() if "augment" in name)
        for name, rate in rates.items():
            print(f"ratio  {name:38s} {rate / train_random:6.1f}x training")
        ok = worst >= 2 * train_random
        print(f"input keeps up (every decode+augment rate >= 2x training): {'yes' if ok else 'NO'}")
        return 0 if ok else 1
    finally:
        if not args.tfds_data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
