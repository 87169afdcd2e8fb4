"""Export: the SavedModel reloads in a process that cannot import deeplab_tf and predicts the
same labels as the Keras model; bad requests fail clearly; existing exports are not overwritten."""

import json
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.assembly import assemble
from deeplab_tf.checkpoints import restore_model
from export.export_saved_model import export_saved_model

def keras_labels(experiment, model_dir, images):
    parts = assemble(experiment)
    restore_model(parts.model, str(model_dir))
    logits = parts.model(parts.normalize(tf.cast(images, tf.float32)), training=False)
    return np.argmax(logits.numpy(), axis=-1)


def test_fresh_process_matches_keras_model(exported_demo, fresh_process_predict):
    experiment, model_dir, export_dir = exported_demo
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 70, 90, 3), dtype=np.uint8)  # not a multiple of the stride
    out = fresh_process_predict(export_dir, images)
    expected = keras_labels(experiment, model_dir, images)
    assert out["tensor_labels"].dtype == np.int32 and out["tensor_labels"].shape == (2, 70, 90)
    np.testing.assert_array_equal(out["tensor_labels"], expected)
    np.testing.assert_array_equal(out["bytes_labels"], expected)
    assert out["probabilities"].shape == (2, 70, 90, 4)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, rtol=1e-5)


def test_dataset_info_is_written_beside_the_model(exported_demo):
    _, _, export_dir = exported_demo
    info = json.load(open(export_dir / "assets.extra" / "dataset_info.json"))
    assert info["class_names"][0] == "background" and len(info["palette"]) == 4


def test_bad_requests_fail_clearly(exported_demo):
    _, _, export_dir = exported_demo
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    small = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8))
    large = tf.io.encode_png(np.zeros((8, 12, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same height and width"):
        serve(image_bytes=tf.stack([small, large]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(image_bytes=tf.constant([b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="no image"):
        serve(image_bytes=tf.constant([], tf.string))
    gray = tf.io.encode_png(np.full((9, 7, 1), 100, np.uint8))
    assert serve(image_bytes=tf.stack([gray]))["labels"].shape == (1, 9, 7)


def test_existing_export_is_not_overwritten(exported_demo):
    experiment, model_dir, export_dir = exported_demo
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_saved_model(experiment, str(model_dir), str(export_dir), log=lambda line: None)
