"""Export fixtures: variants of the `exported_demo` run's SavedModel, real CamVid crops, and the
Keras model's probabilities as the reference."""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.assembly import assemble
from deeplab_tf.training.checkpoints import restore_model
from export.export_saved_model import export_saved_model


@pytest.fixture(scope="session")
def export_variant(exported_demo, tmp_path_factory):
    """Returns export(name, options, output_stride=0, **kwargs) -> export dir of the
    `exported_demo` run with those `ServingOptions` (and other `export_saved_model` arguments,
    e.g. fold_batch_norm=False), written once per session and name."""
    experiment, model_dir, _ = exported_demo
    root, done = tmp_path_factory.mktemp("export_variants"), {}

    def export(name, options, output_stride=0, **kwargs):
        if name not in done:
            done[name] = root / name
            export_saved_model(experiment, str(model_dir), str(done[name]), options=options,
                               output_stride=output_stride, log=lambda line: None, **kwargs)
        return done[name]

    return export


@pytest.fixture(scope="session")
def camvid_crops(camvid_dir):
    """Two real CamVid val images, cropped to uint8 [2, 90, 130, 3] (not a multiple of the stride)."""
    with open(os.path.join(camvid_dir, "val.txt")) as f:
        names = [line.split()[0] for line in f.read().splitlines()[:2]]
    images = [cv2.cvtColor(cv2.imread(os.path.join(camvid_dir, name)), cv2.COLOR_BGR2RGB) for name in names]
    return np.stack([image[120:210, 150:280] for image in images])


@pytest.fixture(scope="session")
def keras_probabilities(exported_demo):
    """Returns probabilities(images uint8 [N,H,W,3], output_stride=0) -> softmax of the Keras
    model restored from the `exported_demo` run, float32 [N,H,W,C], run eagerly."""
    experiment, model_dir, _ = exported_demo
    models = {}

    def probabilities(images, output_stride=0):
        if output_stride not in models:
            models[output_stride] = assemble(experiment, output_stride=output_stride)
            restore_model(models[output_stride].model, str(model_dir))
        parts = models[output_stride]
        logits = parts.model(parts.normalize(tf.cast(images, tf.float32)), training=False)
        return tf.nn.softmax(logits, axis=-1).numpy()

    return probabilities
