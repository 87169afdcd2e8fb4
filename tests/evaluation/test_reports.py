"""reports.write_png: grey and RGB images written as PNGs that another decoder reads back equal."""

import re

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.evaluation import reports


def _decoded(path):
    """The PNG at `path` as TensorFlow's decoder reads it: uint8 [H, W, channels]."""
    return tf.io.decode_png(tf.io.read_file(str(path))).numpy()


def test_grey_and_rgb_images_read_back_equal_in_a_new_folder(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red stays red: the channel order is RGB in and out
    rgb[1, 2] = (10, 20, 30)
    reports.write_png(tmp_path / "new" / "grey.png", grey)
    reports.write_png(tmp_path / "new" / "rgb.png", rgb)
    np.testing.assert_array_equal(_decoded(tmp_path / "new" / "grey.png"), grey[..., None])
    np.testing.assert_array_equal(_decoded(tmp_path / "new" / "rgb.png"), rgb)


@pytest.mark.parametrize("image, problem", [
    (np.zeros((2, 3), np.int64), "int64 [2, 3]"),
    (np.zeros((2, 3, 4), np.uint8), "uint8 [2, 3, 4]"),
])
def test_an_image_it_cannot_write_is_named_and_nothing_is_written(tmp_path, image, problem):
    path = tmp_path / "out.png"
    with pytest.raises(ValueError, match=rf"out\.png.*{re.escape(problem)}"):
        reports.write_png(path, image)
    assert not path.exists()
