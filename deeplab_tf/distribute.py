"""tf.distribute for the trainer: strategies by name, synchronised batch norm, sharded input.

One global batch (the experiment's `train.batch_size`) is split evenly over the replicas. The
input of step s is always the same examples whatever the number of replicas or workers: the
per-replica batches of one stream (seeded by `train.seed`) are taken in order, replica r of step
s taking batch s * replicas + r. A resumed run skips the batches of the steps already done, so it
sees exactly what an uninterrupted run would have seen.
"""

import os

import keras
import tensorflow as tf

from deeplab_tf.data.pipeline import build_train_dataset

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def create_strategy(name: str = "auto", tpu: str = "") -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy called `name` (one of `STRATEGIES`).

    "auto": "mirrored" when there is more than one GPU, "one_device" otherwise (the GPU, or the
    CPU). "mirrored": every local GPU, or every logical CPU device when there is no GPU.
    "multi_worker_mirrored": the workers of the `TF_CONFIG` environment variable (one worker
    without it); create it before TensorFlow runs any op. "tpu": the TPU at address `tpu`
    ("" = the local TPU or the one the environment names). Raises ValueError for another name.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
    # physical devices: listing logical ones would start the runtime, too early for multi-worker.
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Returns whether this process writes the checkpoints, summaries and config (the chief)."""
    return strategy.extended.should_checkpoint


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """Returns this process's task as "worker_0", "chief_0", ... ("local" without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}_{resolver.task_id}"


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Returns the batch of one replica; ValueError unless the replicas divide the global batch."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"train.batch_size={global_batch_size} (the global batch) is not divisible by the "
            f"{replicas} replicas of the strategy; use a multiple of {replicas}"
        )
    return global_batch_size // replicas


def synchronize_batch_norm(model: keras.Model, strategy: tf.distribute.Strategy) -> int:
    """Makes every trainable batch norm layer of `model` compute its batch statistics over the
    whole global batch (all replicas) when there is more than one replica. Returns their count."""
    if strategy.num_replicas_in_sync == 1:
        return 0
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def distributed_train_dataset(strategy, data_config, global_batch_size: int, normalize, seed: int, start_step: int):
    """Returns the distributed training input from step `start_step` on: each replica gets
    (images, labels) of `global_batch_size / replicas` examples, each worker reads its own
    shard of the batches (see the module docstring for which batch goes where)."""
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = context.get_per_replica_batch_size(global_batch_size)
        dataset = build_train_dataset(data_config, batch_size, normalize, seed=seed)
        dataset = dataset.skip(start_step * replicas)
        return dataset.shard(context.num_input_pipelines, context.input_pipeline_id)

    return strategy.distribute_datasets_from_function(dataset_fn)


def temporary_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Returns where a non-chief worker writes the checkpoint copies that multi-worker saving
    needs (deleted after each save), inside `model_dir`."""
    return os.path.join(model_dir, "worker_tmp", worker_id(strategy))
