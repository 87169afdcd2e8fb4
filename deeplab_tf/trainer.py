"""The training loop: SGD with momentum, poly learning rate, L2 weight decay, sparse cross-entropy
that ignores label 255, checkpoints that resume, TensorBoard scalars and a progress line."""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.assembly import assemble
from deeplab_tf.config import Experiment, from_dict
from deeplab_tf.data.pipeline import build_train_dataset
from deeplab_tf.losses import l2_weight_decay, masked_sparse_cross_entropy
from deeplab_tf.schedules import PolyDecay

CONFIG_FILE = "config.json"
# Fields that may change between runs in one model dir without changing what is trained.
RESUMABLE_CHANGES = {"train.log_every", "train.checkpoint_every", "data.data_dir", "data.shuffle_buffer"}


def train(experiment: Experiment, model_dir: str, log=print) -> dict:
    """Trains `experiment` into `model_dir`, resuming from its latest checkpoint.

    Writes `config.json` (the resolved experiment), `checkpoints/` and TensorBoard events in
    `train/`. Returns {"step": final step, "loss": last logged loss (NaN if none ran),
    "checkpoint": latest checkpoint prefix}. Raises ValueError if `model_dir` holds a run of a
    different config, and FloatingPointError if the loss becomes NaN or Inf.
    """
    cfg = experiment.train
    if cfg.init_from and not cfg.init_checkpoint:
        raise ValueError(
            f"Experiment {experiment.name} starts from {cfg.init_from} as in the paper: pass its "
            f"checkpoint with --override=train.init_checkpoint=PATH"
        )
    os.makedirs(model_dir, exist_ok=True)
    _check_or_write_config(experiment, model_dir)
    keras.utils.set_random_seed(cfg.seed)
    parts = assemble(experiment)
    model = parts.model
    if not cfg.train_batch_norm:
        _freeze_batch_norm(model)
    optimizer = keras.optimizers.SGD(
        learning_rate=PolyDecay(cfg.base_learning_rate, cfg.steps, cfg.poly_power), momentum=cfg.momentum
    )
    optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model_weights=checkpoints.model_weights(model), optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, checkpoints.checkpoint_dir(model_dir), max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"Resumed from {manager.latest_checkpoint} at step {int(optimizer.iterations)}")
    elif cfg.init_checkpoint:
        log(f"Initialised the model from {checkpoints.restore_model(model, cfg.init_checkpoint)}")
    start = int(optimizer.iterations)
    if start >= cfg.steps:
        log(f"Training already complete: step {start} >= train.steps={cfg.steps}; nothing to do.")
        return {"step": start, "loss": float("nan"), "checkpoint": manager.latest_checkpoint}

    # Seed the input by the start step so a resumed run does not replay the batches already seen.
    dataset = build_train_dataset(experiment.data, cfg.batch_size, parts.normalize, seed=cfg.seed + start)

    @tf.function(jit_compile=False)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            # One loss per supervised output: with multi-scale inputs, the fused and each scale's.
            outputs = tf.nest.flatten(parts.training_model(images, training=True))
            loss = tf.add_n([masked_sparse_cross_entropy(labels, o, parts.info.ignore_label) for o in outputs])
            total = loss + l2_weight_decay(model, cfg.weight_decay)
        gradients = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
    log(
        f"Training {experiment.name}: steps {start}->{cfg.steps}, batch {cfg.batch_size}, "
        f"crop {tuple(experiment.data.crop_size)}, base lr {cfg.base_learning_rate}, model {model.name} "
        f"({model.count_params():,} parameters)"
    )
    loss_value, window_start, window_steps, run_start = float("nan"), time.perf_counter(), 0, time.perf_counter()
    for images, labels in dataset:
        loss = train_step(images, labels)
        step = int(optimizer.iterations)
        window_steps += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            loss_value = float(loss)
            if not np.isfinite(loss_value):
                raise FloatingPointError(
                    f"Loss is {loss_value} at step {step}; stopping. The latest good checkpoint is "
                    f"{manager.latest_checkpoint} (not overwritten)."
                )
            elapsed = time.perf_counter() - window_start
            images_per_second = window_steps * cfg.batch_size / max(elapsed, 1e-9)
            eta = (cfg.steps - step) * elapsed / window_steps
            learning_rate = float(optimizer.learning_rate)
            log(
                f"step {step}/{cfg.steps}  loss {loss_value:.4f}  lr {learning_rate:.5f}  "
                f"{images_per_second:.1f} img/s  ETA {_format_seconds(eta)}"
            )
            with writer.as_default(step=step):
                tf.summary.scalar("loss", loss_value)
                tf.summary.scalar("learning_rate", learning_rate)
                tf.summary.scalar("images_per_second", images_per_second)
            window_start, window_steps = time.perf_counter(), 0
        if step % cfg.checkpoint_every == 0 or step >= cfg.steps:
            manager.save(checkpoint_number=step)
        if step >= cfg.steps:
            break
    writer.flush()
    log(f"Finished at step {step} in {_format_seconds(time.perf_counter() - run_start)}; "
        f"checkpoint {manager.latest_checkpoint}")
    return {"step": step, "loss": loss_value, "checkpoint": manager.latest_checkpoint}


def _freeze_batch_norm(model) -> None:
    """Freezes every batch norm layer (scale, offset and moving statistics), as DeepLab v2 did:
    a non-trainable Keras BatchNormalization normalises with its moving statistics even when
    the model runs with training=True (which keeps dropout active)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _check_or_write_config(experiment: Experiment, model_dir: str) -> None:
    """Writes `config.json`, or checks it matches `experiment` when the model dir already has one.

    Raises ValueError listing the differing fields, so two different runs never mix in one dir.
    """
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            saved = from_dict(json.load(f)).to_dict()
        current = experiment.to_dict()
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
    with open(path, "w") as f:
        f.write(experiment.to_json())


def _format_seconds(seconds: float) -> str:
    """Returns `seconds` as e.g. '1h02m03s', '4m05s' or '6s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
