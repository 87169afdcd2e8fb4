"""`restore_model` on training checkpoints that do not fit the model or cannot be read."""

import pytest
import tensorflow as tf

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.config import apply_overrides
from deeplab_tf.training.checkpoints import model_weights, restore_model

NARROW = "model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8"


def _demo_model(overrides="", dtype_policy="float32"):
    experiment = experiments.get_experiment("demo")
    return assemble(apply_overrides(experiment, overrides) if overrides else experiment, dtype_policy=dtype_policy,
                    with_data=False).model


def test_a_checkpoint_of_another_width_is_refused_naming_it_and_the_weight(tmp_path):
    """A bare checkpoint (no run config beside it) of a narrower model: before, TF's message alone
    ("Received incompatible tensor with shape ..."), without the file or what to check."""
    prefix = tf.train.Checkpoint(model_weights=model_weights(_demo_model(NARROW))).write(str(tmp_path / "ckpt-1"))
    with pytest.raises(ValueError, match=rf"Checkpoint '{prefix}' does not fit the model .* \(trained with another "
                                         r"experiment or override\?\): .*with shape \(16,\) .* with shape \(64,\) and name aspp"):
        restore_model(_demo_model(), prefix)


@pytest.mark.parametrize("damage", ["data missing", "data truncated", "index truncated"])
def test_a_damaged_checkpoint_prefix_is_refused_naming_it(tmp_path, damage):
    """A checkpoint named by its prefix whose data file is missing or cut short, or whose index is
    cut short: before, a raw OpError or IndexError from TensorFlow's reader (a traceback, not a user
    error); for the index, from telling it from a published TF1 checkpoint."""
    prefix = tf.train.Checkpoint(model_weights=model_weights(_demo_model(NARROW))).write(str(tmp_path / "ckpt-1"))
    damaged = tmp_path / ("ckpt-1.index" if damage.startswith("index") else "ckpt-1.data-00000-of-00001")
    if damage.endswith("missing"):
        damaged.unlink()
    else:
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"^Checkpoint '{prefix}' is unreadable \(a file of it missing or damaged\): "):
        restore_model(_demo_model(NARROW), prefix)


def test_a_checkpoint_of_another_type_is_refused_as_not_fitting_not_as_damaged(tmp_path):
    """float32 weights into a float64 model (`train.mixed_precision=float64`): TensorFlow's reader
    raises the OpError a damaged file raises; it was reported as "a data file missing or damaged".
    The error names the first weight (in the model's order) and both types."""
    model = _demo_model(NARROW)
    prefix = tf.train.Checkpoint(model_weights=model_weights(model)).write(str(tmp_path / "ckpt-1"))
    first = model.weights[0].path
    with pytest.raises(ValueError, match=rf"^Checkpoint '{prefix}' does not fit the model .*: its weights are of "
                                         rf"another type \(weight '{first}' is float32 in the checkpoint, float64 in "
                                         r"the model\)$"):
        restore_model(_demo_model(NARROW, dtype_policy="float64"), prefix)


def test_a_folder_whose_tf1_checkpoint_index_is_damaged_is_refused_naming_it(tmp_path):
    """A folder holding an official-style `model.ckpt-N` whose index is cut short: before, the raw
    OpError; with the error caught and nothing else done, "No checkpoint at <folder>"."""
    prefix = tf.train.Checkpoint(model_weights=model_weights(_demo_model(NARROW))).write(str(tmp_path / "model.ckpt-7"))
    index = tmp_path / "model.ckpt-7.index"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"^Checkpoint '{prefix}' is unreadable \(a file of it missing or damaged\): "):
        restore_model(_demo_model(NARROW), str(tmp_path))
