"""Weights files (`deeplab_tf.models.weights_file`): what is stored, what is restored, and refusals."""

import os

import keras
import numpy as np
import pytest

import experiments
from deeplab_tf.assembly import assemble
from deeplab_tf.models.weights_file import FORMAT_KEY, load_weights_file, save_weights_file


def small_model(seed: int, filters: int = 4) -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(filters, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="logits")(x))
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0, 3, weight.shape).astype("float32") + (4 if "variance" in weight.path else 0))
    return model


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_restores_the_values_rounded_to_the_storage_dtype(tmp_path, dtype):
    source, target = small_model(0), small_model(1)
    path = save_weights_file(source, str(tmp_path / "w.npz"), dtype)
    assert load_weights_file(target, path) == len(source.weights) == 8
    for ours, theirs in zip(target.weights, source.weights):
        expected = theirs.numpy().astype(dtype).astype("float32")  # NumPy's rounding is the reference
        np.testing.assert_array_equal(ours.numpy(), expected)
    with np.load(path, allow_pickle=False) as archive:  # plain arrays under the Keras paths
        assert sorted(archive.files) == sorted([w.path for w in source.weights] + [FORMAT_KEY])
        assert archive["conv/kernel"].dtype == np.dtype(dtype)


def test_float16_file_is_half_the_float32_file(tmp_path):
    model = small_model(0, filters=64)
    half = os.path.getsize(save_weights_file(model, str(tmp_path / "h.npz"), "float16"))
    full = os.path.getsize(save_weights_file(model, str(tmp_path / "f.npz"), "float32"))
    values = sum(int(np.prod(w.shape)) for w in model.weights)
    assert full - half >= 2 * values * 0.99


def test_one_file_restores_the_model_built_at_another_output_stride(tmp_path):
    experiment = experiments.get_experiment("demo")
    model = assemble(experiment, with_data=False).model
    path = save_weights_file(model, str(tmp_path / "demo.npz"), "float32")
    other = assemble(experiment, output_stride=8 if experiment.model.output_stride != 8 else 16, with_data=False).model
    load_weights_file(other, path)
    for ours, theirs in zip(sorted(other.weights, key=lambda w: w.path), sorted(model.weights, key=lambda w: w.path)):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_never_overwrites_and_refuses_bad_arguments(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError, match="w.npz exists"):
        save_weights_file(small_model(0), str(path))
    assert path.read_bytes() == b"the user's file"
    with pytest.raises(ValueError, match="must end in .npz"):
        save_weights_file(small_model(0), str(tmp_path / "w.h5"))
    with pytest.raises(ValueError, match="float64"):
        save_weights_file(small_model(0), str(tmp_path / "x.npz"), "float64")


def test_refuses_values_beyond_float16(tmp_path):
    model = small_model(0)
    model.get_layer("bn").moving_variance.assign(np.full(4, 1e5, "float32"))
    with pytest.raises(ValueError, match="bn/moving_variance.*float16's range"):
        save_weights_file(model, str(tmp_path / "w.npz"))
    assert not os.listdir(tmp_path)


def test_a_file_of_another_model_fails_naming_the_file_and_the_weight(tmp_path):
    path = save_weights_file(small_model(0, filters=4), str(tmp_path / "four.npz"))
    target = small_model(1, filters=5)
    before = [w.numpy() for w in target.weights]
    with pytest.raises(ValueError, match=r"four.npz: weight 'conv/kernel' has shape \(3, 3, 3, 4\), the model's is \(3, 3, 3, 5\)"):
        load_weights_file(target, path)
    for weight, value in zip(target.weights, before):  # nothing half-assigned
        np.testing.assert_array_equal(weight.numpy(), value)
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="head")(inputs))
    with pytest.raises(ValueError, match=r"four.npz does not hold .* 2 missing \(first: \[.head/bias.\]\), 8 not in the model"):
        load_weights_file(other, path)


def test_an_npz_of_another_kind_is_refused(tmp_path):
    path = str(tmp_path / "other.npz")
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz is not a deeplab-tf weights file"):
        load_weights_file(small_model(0), path)


@pytest.mark.parametrize("content", [os.urandom(3000), b"", b"PK\x03\x04 cut short"], ids=["random", "empty", "cut_zip"])
def test_a_file_that_is_no_npz_is_refused_naming_it(tmp_path, content):
    """Before: numpy's message (random bytes: "... load it unsafely using the allow_pickle=
    keyword ..."), without the file, or an EOFError / BadZipFile traceback."""
    path = tmp_path / "fake.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{path} is not a deeplab-tf weights file \(format 1; written by "):
        load_weights_file(small_model(0), str(path))
