"""The training loop: SGD with momentum, poly or step learning rate, L2 weight decay, sparse cross-entropy
that ignores label 255, checkpoints that resume, TensorBoard scalars and a progress line.

Runs under any tf.distribute strategy (`deeplab_tf.training.distribute`): one device, several GPUs or
logical CPUs, several workers, TPU. A resumed run continues the input stream where the
checkpoint left it, so with `train.deterministic` it reproduces an uninterrupted run."""

import contextlib
import dataclasses
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf import cpu, onednn_weight_cache
from deeplab_tf.training import checkpoints, distribute, resume, schedules
from deeplab_tf.assembly import assemble
from deeplab_tf.config import CLASS_WEIGHTINGS, PRECISIONS, SPEED_CHOICE_FIELDS, Experiment, from_file
from deeplab_tf.data import class_weights as class_weights_lib
from deeplab_tf.layers import autotune
from deeplab_tf.training.losses import l2_weight_decay, masked_sparse_cross_entropy
from deeplab_tf.validation import validate
from deeplab_tf.training.momentum_sgd import MomentumSGD

CONFIG_FILE = "config.json"
# Fields that may change between runs in one model dir without changing what is trained.
# Fields a run may resume under other values of: where data are read, how often the loop logs and
# saves, and the speed choices (so a run started with `native` atrous convolutions continues on a
# CPU whose kernels cannot train them).
RESUMABLE_CHANGES = {
    "train.log_every", "train.checkpoint_every", "train.jit_compile", "train.deterministic",
    "data.data_dir", "data.tfds_data_dir", "data.shuffle_buffer", *SPEED_CHOICE_FIELDS,
}


def train(experiment: Experiment, model_dir: str, log=print, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains `experiment` into `model_dir`, resuming from its latest readable checkpoint.

    `strategy` spreads each global batch (`train.batch_size`) over its replicas; None creates
    `deeplab_tf.training.distribute.create_strategy("auto")`. Writes (on the chief) `config.json` (the
    resolved experiment), `checkpoints/` and TensorBoard events in `train/`. Returns {"step":
    final step, "loss": last loss (NaN if none ran), "checkpoint": latest checkpoint prefix}.
    Raises ValueError if the environment turns oneDNN's weight cache on
    (`deeplab_tf.onednn_weight_cache.refuse_for_training`), if the experiment cannot train on this
    machine (`validate(..., training=True)`, before anything is built), if the model cannot take a
    `data.crop_size` crop (checked on shapes, before the first step), if `model_dir` holds a run of a
    different config, is being trained by another process (`resume.model_dir_lock`), or holds checkpoints none of which is readable (it never
    trains again from step 0 over them, `resume.restore_latest`), FloatingPointError
    if the loss or a batch norm's moving statistics become NaN or Inf (nothing of that step is
    saved), and `resume.Preempted` after
    a SIGTERM (on any worker): the step in progress is finished and checkpointed first, so a
    rerun resumes from it.
    """
    onednn_weight_cache.refuse_for_training()
    cfg = experiment.train
    if cfg.init_from and not cfg.init_checkpoint:
        raise ValueError(
            f"Experiment {experiment.name} starts from {cfg.init_from} as in the paper: pass its "
            f"checkpoint with --override=train.init_checkpoint=PATH"
        )
    if cfg.mixed_precision not in PRECISIONS:
        raise ValueError(f"train.mixed_precision={cfg.mixed_precision!r}; known: {PRECISIONS}")
    lr_schedule = schedules.from_train_config(cfg)  # raises on a bad schedule before anything is built
    if cfg.class_weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"train.class_weighting={cfg.class_weighting!r}; known: {CLASS_WEIGHTINGS}")
    strategy = strategy or distribute.create_strategy("auto")
    chief = distribute.is_chief(strategy)
    per_replica_batch = distribute.per_replica_batch_size(cfg.batch_size, strategy)
    os.makedirs(model_dir, exist_ok=True)
    # Only the chief locks: every worker of a multi-worker run trains into the same shared model dir.
    with resume.model_dir_lock(model_dir) if chief else contextlib.nullcontext():
        return _train_locked(experiment, model_dir, log, strategy, lr_schedule, per_replica_batch)


def _train_locked(experiment: Experiment, model_dir: str, log, strategy, lr_schedule, per_replica_batch: int) -> dict:
    """Runs `train` once the checks are done and `model_dir` is locked; returns what `train` returns."""
    experiment = resolve_precision(experiment, model_dir, log)
    validate(experiment, training=True)
    cfg = experiment.train
    chief = distribute.is_chief(strategy)
    _check_or_write_config(experiment, model_dir, write=chief)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    with strategy.scope():
        parts = assemble(experiment, dtype_policy=cfg.mixed_precision or "float32")
        optimizer = _build_optimizer(cfg, parts.model, lr_schedule)
    model = parts.model
    _check_crop_size(parts.training_model, experiment.data.crop_size)
    if not cfg.train_batch_norm:
        freeze_batch_norm(model)
    # One replica keeps Keras' batch norm: the synchronised layer's per-example float64 sums made
    # one-device training slower and the CamVid integration test's loss stop falling in 40 steps.
    synchronized = distribute.synchronize_batch_norm(model) if strategy.num_replicas_in_sync > 1 else 0
    tracked = {"model_weights": checkpoints.model_weights(model), "optimizer": optimizer}
    random_state = _random_state(model)
    if random_state:  # dropout: a resumed run draws the masks an uninterrupted one would
        tracked["random_state"] = tf.train.Checkpoint(**random_state)
    step_counter = optimizer.iterations
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        # Steps skipped for overflowing float16 gradients do not advance the optimizer's count.
        with strategy.scope():
            step_counter = tracked["step"] = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(**tracked)
    directory = checkpoints.checkpoint_dir(model_dir)
    resumed = resume.restore_latest(checkpoint, directory, log)
    writer = resume.CheckpointWriter(checkpoint, directory, model_dir, strategy, latest=resumed, log=log)
    if resumed:
        log(f"Resumed from {resumed} at step {_current_step(step_counter)}")
    elif cfg.init_checkpoint:
        source = checkpoints.restore_model(model, cfg.init_checkpoint, log, partial=True)  # fine-tuning
        log(f"Initialised the model from {source}")
    start = _current_step(step_counter)
    if start >= cfg.steps:
        log(f"Training already complete: step {start} >= train.steps={cfg.steps}; nothing to do.")
        return {"step": start, "loss": float("nan"), "checkpoint": resumed}

    iterator = iter(distribute.distributed_train_dataset(
        strategy, experiment.data, cfg.batch_size, parts.normalize, cfg.seed, start
    ))
    train_step = _distributed_step(strategy, parts, optimizer, cfg, _class_weights(experiment, parts, log))
    summaries = tf.summary.create_file_writer(os.path.join(model_dir, "train")) if chief else tf.summary.create_noop_writer()
    log(
        f"Training {experiment.name}: steps {start}->{cfg.steps}, {type(strategy).__name__} with "
        f"{strategy.num_replicas_in_sync} replica(s): global batch {cfg.batch_size} = {per_replica_batch} per "
        f"replica, base lr {cfg.base_learning_rate} ({lr_schedule.describe()}), crop "
        f"{tuple(experiment.data.crop_size)}, {cfg.mixed_precision or 'float32'}, model {model.name} "
        f"({model.count_params():,} parameters)"
        + (f", batch norm synchronised across replicas ({synchronized} layers)" if synchronized else "")
    )
    if cfg.train_batch_norm and per_replica_batch < 8:
        log(
            f"warning: per-replica batch {per_replica_batch} < 8 with trainable batch norm: its statistics "
            f"are noisy{' (synchronised: computed over the global batch)' if synchronized else ''}; "
            f"consider a larger batch or train.train_batch_norm=false to freeze it"
        )
    loss_value, window_start, window_steps, run_start = float("nan"), time.perf_counter(), 0, time.perf_counter()
    with resume.TerminationSignal() as termination:
        for step in range(start + 1, cfg.steps + 1):
            loss, finite_statistics = train_step(iterator)
            loss_value = float(loss)
            if step_counter is not optimizer.iterations:
                step_counter.assign_add(1)
            window_steps += 1
            if not np.isfinite(loss_value) or not bool(finite_statistics):
                what = (f"Loss is {loss_value}" if not np.isfinite(loss_value)
                        else "Batch norm moving statistics are not finite")
                latest = (f"The latest good checkpoint is {writer.latest} (not overwritten)." if writer.latest
                          else "No checkpoint was written before it.")
                raise FloatingPointError(f"{what} at step {step}; stopping. {latest}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                elapsed = time.perf_counter() - window_start
                images_per_second = window_steps * cfg.batch_size / max(elapsed, 1e-9)
                eta = (cfg.steps - step) * elapsed / window_steps
                learning_rate = float(optimizer.learning_rate)
                log(
                    f"step {step}/{cfg.steps}  loss {loss_value:.4f}  lr {learning_rate:.5f}  "
                    f"{images_per_second:.1f} img/s  ETA {_format_seconds(eta)}"
                )
                with summaries.as_default(step=step):
                    tf.summary.scalar("loss", loss_value)
                    tf.summary.scalar("learning_rate", learning_rate)
                    tf.summary.scalar("images_per_second", images_per_second)
                window_start, window_steps = time.perf_counter(), 0
            saved = step % cfg.checkpoint_every == 0 or step == cfg.steps
            if saved:
                writer.save(step)
            if step < cfg.steps and distribute.any_worker(strategy, termination.received is not None):
                _stop_preempted(termination.received, step, cfg.steps, writer, saved, summaries, log)
    summaries.flush()
    log(f"Finished at step {step} in {_format_seconds(time.perf_counter() - run_start)}; "
        f"checkpoint {writer.latest}")
    return {"step": step, "loss": loss_value, "checkpoint": writer.latest}


def _stop_preempted(signal_number, step, steps, writer, saved, summaries, log):
    """Checkpoints `step` (unless just done), then raises `resume.Preempted` naming the checkpoint."""
    if not saved:
        writer.save(step)
    summaries.flush()
    cause = signal.Signals(signal_number).name if signal_number else "a termination signal on another worker"
    message = (
        f"Stopped by {cause} after step {step}/{steps}; checkpoint {writer.latest} written. "
        f"Rerun the same command to resume from step {step}."
    )
    log(message)
    raise resume.Preempted(message, step, writer.latest)


def _check_crop_size(model, crop_size) -> None:
    """Returns None when `model` accepts a batch of `crop_size` (height, width) images, checked on
    symbolic tensors (shapes only, nothing computed). Raises ValueError naming `data.crop_size` and
    why the model refuses it (e.g. a strided layer left with a map smaller than its kernel)."""
    try:
        model.compute_output_spec(keras.KerasTensor((None, *crop_size, 3)))
    except ValueError as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(
            f"data.crop_size={tuple(crop_size)} is too small for the model: {reason} Choose a larger crop"
        ) from None


def _random_state(model) -> dict:
    """Returns {name: variable} of the random generators' states of `model` (the Keras
    SeedGenerators of its layers, e.g. dropout's), which `model.weights` leaves out; {} for a model
    without any. Named by layer (generators' own names change with every model built)."""
    return {
        f"{layer.name}.{i}": generator.state
        for layer in model._flatten_layers(include_self=False, recursive=True)
        for i, generator in enumerate(layer._seed_generators)
    }


def _class_weights(experiment: Experiment, parts, log) -> np.ndarray | None:
    """Returns None or float32 [num_classes]: the loss weight of each class (`train.class_weighting`)."""
    if not experiment.train.class_weighting:
        return None
    info = parts.info
    counts = class_weights_lib.class_pixel_counts(
        parts.source.examples(experiment.data.train_split), info.num_classes, info.ignore_label
    )
    weights = class_weights_lib.median_frequency_weights(*counts)
    log("Class weights (median frequency over the training split): "
        + ", ".join(f"{name} {w:.3f}" for name, w in zip(info.class_names, weights)))
    return weights


def _build_optimizer(cfg, model, lr_schedule) -> keras.optimizers.Optimizer:
    """Returns SGD with momentum on `lr_schedule` (`MomentumSGD`: one fused kernel per variable),
    wrapped for loss scaling under float16."""
    optimizer = MomentumSGD(learning_rate=lr_schedule, momentum=cfg.momentum)
    if cfg.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def _distributed_step(strategy, parts, optimizer, cfg, class_weights=None):
    """Returns step(iterator) -> (the global batch's loss, bool scalar: every floating-point
    non-trainable variable, e.g. the batch norms' moving statistics, is finite after the step):
    one SGD step on the next batch. (A NaN batch can leave the loss finite: a batch norm fused
    with its ReLU by grappler under oneDNN outputs 0 for NaN while its moving statistics take
    the NaN, see `deeplab_tf.layers.fused_batch_norm`.)

    Each replica's cross-entropy is weighted by its share of the global batch's labelled pixels
    and the L2 term divided by the replicas, so the gradients the optimizer sums over replicas
    are those of the one-device loss on the whole global batch. `class_weights` (None or float
    [C]) weighs each pixel's cross-entropy by its class. The gradients of the classifier layers
    are multiplied by `cfg.classifier_learning_rate_multiplier`, which for SGD with momentum is
    the same as multiplying their learning rate.
    """
    model, ignore_label = parts.model, parts.info.ignore_label
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    multipliers = _gradient_multipliers(model, cfg.classifier_learning_rate_multiplier)
    batch = distribute.per_replica_batch_size(cfg.batch_size, strategy)

    @tf.function(jit_compile=cfg.jit_compile)
    def replica_step(images, labels):
        # Every batch is full (repeated input, remainder dropped), but a multi-worker strategy's
        # input leaves the batch dimension unknown; the speed choices need it static to be tuned.
        images = tf.ensure_shape(images, [batch, *images.shape[1:]])
        labels = tf.ensure_shape(labels, [batch, *labels.shape[1:]])
        context = tf.distribute.get_replica_context()
        labelled = tf.reduce_sum(tf.cast(tf.not_equal(labels, ignore_label), tf.float32))
        share = labelled / tf.maximum(context.all_reduce(tf.distribute.ReduceOp.SUM, labelled), 1.0)
        # Under XLA the speed choices traced here are timed compiled by XLA too.
        with tf.GradientTape() as tape, autotune.compiled_by_xla(cfg.jit_compile):
            # One loss per supervised output: with multi-scale inputs, the fused and each scale's.
            outputs = tf.nest.flatten(parts.training_model(images, training=True))
            loss = share * tf.add_n(
                [masked_sparse_cross_entropy(labels, o, ignore_label, class_weights) for o in outputs]
            )
            total = loss + l2_weight_decay(model, cfg.weight_decay) / context.num_replicas_in_sync
            if scale_loss:
                total = optimizer.scale_loss(total)
        gradients = [g * m if m != 1.0 else g
                     for g, m in zip(tape.gradient(total, model.trainable_variables), multipliers)]
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    statistics = [v for v in model.non_trainable_variables if tf.as_dtype(v.dtype).is_floating]

    @tf.function
    def step(iterator):
        losses = strategy.run(replica_step, args=next(iterator))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in statistics] or [True])
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None), finite

    return step


def _gradient_multipliers(model, classifier_multiplier: float) -> list[float]:
    """Returns one float per `model.trainable_variables`: `classifier_multiplier` for the variables
    of layers named `logits*` (the final classifiers), 1 for the rest. Raises ValueError when a
    multiplier other than 1 is asked of a model without such layers."""
    if classifier_multiplier == 1.0:
        return [1.0] * len(model.trainable_variables)
    classifier = [v.path.split("/")[-2].startswith("logits") for v in model.trainable_variables]
    if not any(classifier):
        raise ValueError(
            f"train.classifier_learning_rate_multiplier={classifier_multiplier} but model {model.name} has no "
            f"classifier layer named logits*"
        )
    return [classifier_multiplier if c else 1.0 for c in classifier]


def freeze_batch_norm(model) -> None:
    """Freezes every batch norm layer (scale, offset and moving statistics), as DeepLab v2 did:
    a non-trainable Keras BatchNormalization normalises with its moving statistics even when
    the model runs with training=True (which keeps dropout active)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def resolve_precision(experiment: Experiment, model_dir: str, log=print) -> Experiment:
    """Returns `experiment` with `train.mixed_precision="auto"` resolved and logs the choice and why
    (other values are returned as they are). "auto" is, in this order:
    - what `model_dir`'s config.json records, when it holds a run that auto could have chosen
      ("" or "mixed_bfloat16"): a resumed run keeps its precision, even on another CPU;
    - "" (float32) under `train.deterministic`: a deterministic run promises the same weights from
      the same command, and auto would train in another precision on another CPU;
    - "mixed_bfloat16" on a CPU with native bfloat16 units (`deeplab_tf.cpu.native_bfloat16`),
      whose convolutions it speeds up (though not every model's step: issue 21 found MobileNetV2
      v3+ training no faster on an AMX CPU), and "" elsewhere (bfloat16 through float32
      conversions: no speed-up).
    The resolved value is what config.json records, so a rerun with it reproduces the run.
    """
    if experiment.train.mixed_precision != "auto":
        return experiment
    recorded = _recorded_run(model_dir)
    saved = recorded.train.mixed_precision if recorded else None
    if saved in ("", "mixed_bfloat16"):
        precision, reason = saved, f"as this run's {CONFIG_FILE} records"
    elif experiment.train.deterministic:
        precision, reason = "", "train.deterministic: the same precision on every CPU"
    else:
        native, reason = cpu.native_bfloat16()
        precision = "mixed_bfloat16" if native else ""
    log(f"train.mixed_precision=auto: {precision or 'float32'} ({reason})")
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, mixed_precision=precision))


def _recorded_run(model_dir: str) -> Experiment | None:
    """Returns the experiment of the run `model_dir` holds: what its config.json records, when it
    has a checkpoint. None when it has no config.json, or no checkpoint: a training that stopped
    before its first checkpoint (a typo, a crash) binds nothing, and its rerun may change the
    config. Raises ValueError naming config.json when it is not a deeplab-tf experiment config
    (another program's file, which is never replaced), OSError when it cannot be read."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    recorded = from_file(path)
    return recorded if checkpoints.checkpoints_on_disk(checkpoints.checkpoint_dir(model_dir)) else None


def _check_or_write_config(experiment: Experiment, model_dir: str, write: bool = True) -> None:
    """Checks `config.json` matches `experiment` when the model dir holds a run (`_recorded_run`),
    then writes it (atomically) if `write`.

    Raises ValueError listing the differing fields, so two different runs never mix in one dir,
    and as `_recorded_run` does.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    recorded = _recorded_run(model_dir)
    if recorded:
        saved, current = recorded.to_dict(), experiment.to_dict()
        differences = [
            f"{section}.{key}: saved {saved[section][key]!r}, now {current[section][key]!r}"
            for section in ("model", "data", "train", "eval")
            for key in current[section]
            if current[section][key] != saved[section][key] and f"{section}.{key}" not in RESUMABLE_CHANGES
        ]
        if saved["name"] != current["name"]:
            differences.insert(0, f"experiment: saved {saved['name']!r}, now {current['name']!r}")
        if differences:
            raise ValueError(
                f"{model_dir} holds a run with a different config ({path}); use another --model_dir "
                f"or the same settings. Differences: " + "; ".join(differences)
            )
    if write:
        with open(path + ".tmp", "w") as f:
            f.write(experiment.to_json())
        os.replace(path + ".tmp", path)


def _format_seconds(seconds: float) -> str:
    """Returns `seconds` as e.g. '1h02m03s', '4m05s' or '6s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _current_step(counter) -> int:
    """Returns the value of the step `counter` (also for a variable mirrored over replicas)."""
    return int(tf.convert_to_tensor(counter.value if isinstance(counter, keras.Variable) else counter))
