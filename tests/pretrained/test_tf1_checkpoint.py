import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.pretrained.source_tensors import SourceFileError
from deeplab_tf.pretrained.tf1_checkpoint import read_tf1_checkpoint

RNG = np.random.default_rng(0)
MODEL_VARIABLES = {
    "MobilenetV2/Conv/weights": RNG.normal(size=(3, 3, 3, 32)).astype(np.float32),
    "MobilenetV2/Conv/BatchNorm/gamma": RNG.uniform(0.5, 1.5, size=32).astype(np.float32),
    "MobilenetV2/Conv/BatchNorm/moving_mean": RNG.normal(size=32).astype(np.float32),
    "logits/semantic/biases": RNG.normal(size=21).astype(np.float32),
}
TRAINABLE = ("MobilenetV2/Conv/weights", "MobilenetV2/Conv/BatchNorm/gamma", "logits/semantic/biases")


def write_official_style_checkpoint(directory) -> tuple[str, dict]:
    """Saves MODEL_VARIABLES as DeepLab's train.py would (tf.compat.v1.train.Saver, step 30000),
    with a Momentum slot per trainable variable, global_step and, like slim's ImageNet checkpoints,
    ExponentialMovingAverage shadows. Returns (the checkpoint prefix, {name: saved value})."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        variables = [
            tf.compat.v1.get_variable(name, initializer=value, trainable=name in TRAINABLE)
            for name, value in MODEL_VARIABLES.items()
        ]
        global_step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(v) for v in variables if v.trainable])
        train = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9).minimize(loss, global_step)
        tf.compat.v1.train.ExponentialMovingAverage(0.999).apply(variables)
        session.run(tf.compat.v1.global_variables_initializer())
        session.run(tf.compat.v1.assign(global_step, 29999))
        session.run(train)  # the slots get values; the checkpoint stores the variables after the step
        saved = {v.op.name: session.run(v) for v in variables}
        names = [v.op.name for v in tf.compat.v1.global_variables()]
        assert any(n.endswith("/Momentum") for n in names)
        assert any(n.endswith("/ExponentialMovingAverage") for n in names)
        prefix = tf.compat.v1.train.Saver().save(session, str(directory / "model.ckpt"), global_step=global_step)
    assert prefix.endswith("model.ckpt-30000")
    return prefix, saved


def test_reads_model_variables_by_prefix_without_slots_and_global_step(tmp_path):
    prefix, saved = write_official_style_checkpoint(tmp_path)
    assert "global_step" in tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    tensors = read_tf1_checkpoint(prefix)
    assert sorted(tensors) == sorted(MODEL_VARIABLES)
    assert tensors.path == prefix
    for name, value in saved.items():
        np.testing.assert_array_equal(tensors.tensor(name, value.shape), value)
    moving_mean = "MobilenetV2/Conv/BatchNorm/moving_mean"
    np.testing.assert_array_equal(tensors[moving_mean], MODEL_VARIABLES[moving_mean])  # not trainable
    assert not np.array_equal(tensors["logits/semantic/biases"], MODEL_VARIABLES["logits/semantic/biases"])  # trained


def test_a_directory_means_its_latest_checkpoint(tmp_path):
    prefix, _ = write_official_style_checkpoint(tmp_path)
    tensors = read_tf1_checkpoint(str(tmp_path))
    assert tensors.path == prefix and sorted(tensors) == sorted(MODEL_VARIABLES)


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceFileError, match=r"^no checkpoint in directory .* \(no 'checkpoint' file naming one\)$"):
        read_tf1_checkpoint(str(tmp_path))
    with pytest.raises(SourceFileError, match=r"^no TF1 checkpoint at .*model.ckpt-5 \(expected .*model.ckpt-5.index"):
        read_tf1_checkpoint(str(tmp_path / "model.ckpt-5"))
