"""`restore_model` takes a weights file, or the zoo name of a shipped one."""

import numpy as np
import pytest

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.models.weights_file import save_weights_file
from deeplab_tf.pretrained import zoo
from deeplab_tf.training.checkpoints import restore_model


def _demo_model():
    return assemble(experiments.get_experiment("demo"), with_data=False).model


def test_restores_a_weights_file(tmp_path):
    source, target = _demo_model(), _demo_model()
    path = save_weights_file(source, str(tmp_path / "demo.npz"), "float32")
    assert restore_model(target, path) == path
    for ours, theirs in zip(target.weights, source.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_a_shipped_name_whose_file_is_missing_names_the_path(tmp_path, monkeypatch):
    shipped = [name for name in zoo.PRETRAINED_MODELS if zoo.is_shipped(name)]
    assert shipped, "the zoo registers no shipped model"
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/{zoo.get_pretrained(shipped[0]).files[0]}"):
        restore_model(_demo_model(), shipped[0])


def test_a_folder_of_that_name_is_still_a_checkpoint_path(tmp_path, monkeypatch):
    name = next(name for name in zoo.PRETRAINED_MODELS if zoo.is_shipped(name))
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir()  # a user's run folder that happens to share the name: never the zoo's file
    with pytest.raises(FileNotFoundError, match=f"No checkpoint at '{name}'"):
        restore_model(_demo_model(), name)
