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


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """Returns the number of worker processes (chief included) that `strategy` spans (1 locally)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs))


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Returns whether `flag` is True on any worker. With several workers this is a collective
    (every worker must call it at the same point of the loop); with one, `flag` itself."""
    if worker_count(strategy) == 1:
        return flag
    votes = strategy.run(lambda: tf.constant(1.0 if flag else 0.0))
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """Returns the batch of one replica; ValueError unless the replicas divide the global batch."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"train.batch_size={global_batch_size} (the global batch) is not divisible by the "
            f"{replicas} replicas of the strategy; use a multiple of {replicas}"
        )
    return global_batch_size // replicas


@keras.saving.register_keras_serializable(package="deeplab_tf")
class SynchronizedBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization whose training statistics are those of the global batch, the same
    (to float32 rounding) however the batch is split over replicas.

    Keras's `BatchNormalization(synchronized=True)` all-reduces float32 sums of x and x**2 and
    takes var = E[x**2] - E[x]**2, which differs from one device's `tf.nn.moments` in the last
    bits and rounds differently for each split. Training from scratch amplifies those last bits
    (see `synchronized_moments`), so 2 replicas drift from one device within a few steps. Here
    each example's sums (float32, as on one device) are added over the batch and the replicas in
    float64 and rounded once, and the variance is taken around the global mean (two passes, as
    `tf.nn.moments`). With `synchronized=False`, or a mask, it is Keras's layer. Same arguments
    as `keras.layers.BatchNormalization`.
    """

    def _moments(self, inputs, mask):
        if mask is not None or not self.synchronized:
            return super()._moments(inputs, mask)
        return synchronized_moments(inputs, self._reduction_axes)


def synchronized_moments(x, axes):
    """Returns (mean, variance) of `x` over `axes` (which include the batch axis 0) and over every
    replica of the current tf.distribute replica context (one replica outside tf.distribute).

    Split-invariant: per-example sums are float32 reductions over the non-batch axes, identical
    whatever the batch; they are summed over the batch and the replicas in float64 (float32 on
    TPU, which has no float64) and rounded to float32 once, so 1 replica of batch 4 and 2 of
    batch 2 get the same bits. Gradients flow through the all-reduces (their gradient is an
    all-reduce of the upstream gradients).
    """
    context = tf.distribute.get_replica_context()
    accumulator = tf.float32 if isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy) else tf.float64
    axes = sorted(int(a) % len(x.shape) for a in axes)
    example_axes = [a for a in axes if a != 0]
    shape = tf.shape(x)

    def global_sum(values):  # [B, ...] per-example sums -> the global batch's sum (keepdims)
        local = tf.reduce_sum(tf.cast(values, accumulator), axis=0, keepdims=True)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, local)

    count = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.reduce_prod(tf.gather(shape, axes)), accumulator))
    mean = tf.cast(global_sum(tf.reduce_sum(x, example_axes, keepdims=True)) / count, x.dtype)
    squares = tf.math.squared_difference(x, tf.stop_gradient(mean))
    variance = tf.cast(global_sum(tf.reduce_sum(squares, example_axes, keepdims=True)) / count, x.dtype)
    keep = [a for a in range(len(x.shape)) if a not in axes]
    return tf.reshape(mean, [x.shape[a] for a in keep]), tf.reshape(variance, [x.shape[a] for a in keep])


def synchronize_batch_norm(model: keras.Model) -> int:
    """Makes every trainable batch norm layer of `model` a `SynchronizedBatchNormalization`: its
    batch statistics are computed over the whole global batch (all replicas), with the same
    result for any number of replicas, one included.
    Returns their count.

    The trainer uses it only with 2+ replicas; one device keeps Keras' batch norm (measured: with
    this layer on one device the CamVid integration test's loss once stopped falling, and the
    from-scratch CamVid benchmark was measured with Keras' layer). From scratch on real images the
    float32 gradients of a deep batch-norm net are only good to about 1% (camvid_mnv2_v3plus at
    initialisation: median 1.2% per variable against float64, for Keras' layer and this one
    alike), so the two layers, which round differently, train apart after a step (0.45% in the
    loss at step 2), while this layer's step-1 gradients on 1 and 2 replicas agree to 8e-7
    (median per variable). In float64 (`train.mixed_precision=float64`) 2 replicas with this
    layer and one device with Keras' layer give the same losses for 5 steps to ~1e-7
    (`tests/training/test_distribute.py`).
    """
    layers = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    for layer in layers:
        # Same state and weights: only the moments change (Keras layers are built by
        # backbones we do not construct, so the class is switched in place).
        layer.__class__ = SynchronizedBatchNormalization
        layer.synchronized = True
    return len(layers)


def distributed_train_dataset(strategy, data_config, global_batch_size: int, normalize, seed: int, start_step: int):
    """Returns the distributed training input from step `start_step` on: each replica gets
    (images, labels) of `global_batch_size / replicas` examples, each worker reads its own
    shard of the batches (see the module docstring for which batch goes where) and decodes only
    the examples of its shard."""
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = context.get_per_replica_batch_size(global_batch_size)
        return build_train_dataset(data_config, batch_size, normalize, seed=seed, skip_batches=start_step * replicas,
                                   num_shards=context.num_input_pipelines, shard_index=context.input_pipeline_id)

    return strategy.distribute_datasets_from_function(dataset_fn)


def temporary_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
    """Returns where a non-chief worker writes the checkpoint copies that multi-worker saving
    needs (deleted after each save), inside `model_dir`."""
    return os.path.join(model_dir, "worker_tmp", worker_id(strategy))
