"""refine_batch inside graphs: batching, tf.function with dynamic shapes, SavedModel export."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.crf import DenseCRFParams, refine, refine_batch

PARAMS = DenseCRFParams(w1=5, sigma_alpha=30, sigma_beta=4, iterations=5)
SIGNATURE = [tf.TensorSpec([None, None, None, 3], tf.uint8), tf.TensorSpec([None, None, None, None], tf.float32)]


def test_batch_equals_each_image_alone(scene):
    pairs = [scene(18, 22, 4, seed) for seed in range(3)]
    images = np.stack([image for image, _ in pairs])
    probabilities = np.stack([p for _, p in pairs])
    batched = refine_batch(images, probabilities, PARAMS).numpy()
    for index, (image, p) in enumerate(pairs):
        np.testing.assert_allclose(batched[index], refine(image, p, PARAMS), atol=1e-6)


def test_one_trace_serves_every_size_and_class_count(scene):
    run = tf.function(lambda images, probabilities: refine_batch(images, probabilities, PARAMS), input_signature=SIGNATURE)
    for shape in [(16, 12, 3), (9, 21, 5), (30, 8, 2)]:
        image, p = scene(*shape)
        np.testing.assert_allclose(run(image[None], p[None])[0].numpy(), refine(image, p, PARAMS), atol=1e-5)
    assert run.experimental_get_tracing_count() == 1


class CRFModule(tf.Module):
    @tf.function(input_signature=SIGNATURE)
    def refine(self, images, probabilities):
        return {"probabilities": refine_batch(images, probabilities, PARAMS)}


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["deeplab_tf"] = None  # the export must run without the project's code
    import numpy as np, tensorflow as tf
    export_dir, inputs, output = sys.argv[1:]
    data = np.load(inputs)
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    np.save(output, serve(images=tf.constant(data["images"]), probabilities=tf.constant(data["probabilities"]))["probabilities"].numpy())
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("crf_export"))
    module = CRFModule()
    tf.saved_model.save(module, path, signatures={"serving_default": module.refine})
    return path


def test_saved_model_reloads_and_matches(exported, scene):
    serve = tf.saved_model.load(exported).signatures["serving_default"]
    for shape in [(14, 11, 3), (20, 7, 6)]:
        image, p = scene(*shape)
        out = serve(images=tf.constant(image[None]), probabilities=tf.constant(p[None]))["probabilities"]
        np.testing.assert_allclose(out[0].numpy(), refine(image, p, PARAMS), atol=1e-5)


def test_saved_model_runs_in_a_process_without_the_project(exported, scene, tmp_path):
    pairs = [scene(15, 13, 3, seed) for seed in range(2)]
    np.savez(tmp_path / "inputs.npz", images=np.stack([i for i, _ in pairs]), probabilities=np.stack([p for _, p in pairs]))
    subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, exported, str(tmp_path / "inputs.npz"), str(tmp_path / "out.npy")],
        check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    out = np.load(tmp_path / "out.npy")
    for index, (image, p) in enumerate(pairs):
        np.testing.assert_allclose(out[index], refine(image, p, PARAMS), atol=1e-5)
