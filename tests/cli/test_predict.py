"""predict: label PNGs and overlays per image; unreadable files reported by name and skipped."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.cli.predict import list_inputs, overlay, predict_files


def test_predicts_readable_files_and_reports_the_rest(exported_demo, tmp_path):
    _, _, export_dir = exported_demo
    inputs = tmp_path / "in"
    inputs.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(inputs / "a.png"), image)
    cv2.imwrite(str(inputs / "b.jpg"), image)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    messages = []
    failed = predict_files(str(export_dir), list_inputs(str(inputs)), str(tmp_path / "out"), log=messages.append)
    assert failed == [str(inputs / "broken.png")]
    assert any("broken.png" in m for m in messages)
    labels = cv2.imread(str(tmp_path / "out" / "a.png"), cv2.IMREAD_UNCHANGED)
    expected = tf.saved_model.load(str(export_dir)).signatures["serving_image_tensor"](
        images=tf.constant(image[None, ..., ::-1].copy())
    )["labels"][0].numpy()
    np.testing.assert_array_equal(labels, expected)
    assert cv2.imread(str(tmp_path / "out" / "b_overlay.png")).shape == (20, 30, 3)


def test_overlay_blends_palette_colours():
    image = np.full((1, 2, 3), 100, np.uint8)
    out = overlay(image, np.array([[0, 1]]), [(0, 0, 0), (200, 100, 0)], alpha=0.5)
    np.testing.assert_array_equal(out, [[[50, 50, 50], [150, 100, 50]]])


def test_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_inputs(str(tmp_path / "nowhere"))
