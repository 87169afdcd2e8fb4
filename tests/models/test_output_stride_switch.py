"""DeepLabv3's protocol: train at output stride 16, evaluate at 8 with the same weights."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.training.checkpoints import model_weights, restore_model
from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model

CONFIG = ModelConfig(arch="deeplab_v3", backbone="resnet50", multi_grid=(1, 2, 4), aspp_filters=16,
                     atrous_implementation="space_to_batch")


def test_os16_checkpoint_restores_into_os8_model(tmp_path):
    trained = build_model(CONFIG, 3).model
    prefix = tf.train.Checkpoint(model_weights=model_weights(trained)).write(str(tmp_path / "ckpt"))
    evaluated = build_model(dataclasses.replace(CONFIG, output_stride=8), 3).model
    restore_model(evaluated, prefix)
    saved = {w.path: w.numpy() for w in trained.weights}
    restored = {w.path: w.numpy() for w in evaluated.weights}
    assert saved.keys() == restored.keys()
    for path, value in saved.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)
    # Rates double with the output stride: ASPP 6/12/18 -> 12/24/36, multi-grid 2/4/8 -> 4/8/16.
    assert [evaluated.get_layer("aspp").get_layer(f"aspp_atrous{i}_conv").rate for i in (1, 2, 3)] == [12, 24, 36]
    aspp_input = [lambda images, m=m: m.layers[1](images)["P5"] for m in (trained, evaluated)]  # the backbone
    images = np.zeros((1, 64, 96, 3), np.float32)
    assert aspp_input[0](images).shape[1:3] == (4, 6)
    assert aspp_input[1](images).shape[1:3] == (8, 12)
