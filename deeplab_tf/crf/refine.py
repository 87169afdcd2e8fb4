"""`refine`: one image through the dense CRF, with the TensorFlow or the pydensecrf backend."""

import functools

import numpy as np
import tensorflow as tf

from deeplab_tf.crf.inputs import check_inputs
from deeplab_tf.crf.params import DenseCRFParams
from deeplab_tf.crf.pydensecrf_backend import refine_pydensecrf
from deeplab_tf.crf.tf_backend import mean_field

BACKENDS = ("tensorflow", "pydensecrf")


def refine(image, probabilities, params: DenseCRFParams = DenseCRFParams(), backend: str = "tensorflow") -> np.ndarray:
    """Returns the CRF-refined probabilities of one image, float32 [H, W, C].

    Args:
        image: uint8 [H, W, 3] RGB.
        probabilities: float [H, W, C]. Per-pixel class distributions (softmax output).
        params: `DenseCRFParams`. Defaults to DeepLab's published VOC settings.
        backend: str. "tensorflow" (standard TF ops, runs anywhere TF runs) or "pydensecrf"
            (the reference C++ implementation). Defaults to "tensorflow".

    Raises ValueError for an unknown backend and for invalid inputs (see
    `deeplab_tf.crf.inputs.check_inputs`).

    Example:
    ```python
    labels = refine(image, probabilities).argmax(axis=-1)
    ```
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown CRF backend {backend!r}; known: {', '.join(BACKENDS)}")
    image, probabilities = check_inputs(image, probabilities)
    if backend == "pydensecrf":
        return refine_pydensecrf(image, probabilities, params)
    values = (params.w1, params.sigma_alpha, params.sigma_beta, params.w2, params.sigma_gamma)
    return _compiled(params.iterations)(image[None], probabilities[None], *values)[0].numpy()


@functools.lru_cache(maxsize=8)
def _compiled(iterations: int):
    """Returns `mean_field` as a tf.function traced once for any image size and any weights and
    sigmas (scalar tensors), for `iterations` iterations."""
    scalar = tf.TensorSpec([], tf.float32)
    return tf.function(
        lambda images, probabilities, *values: mean_field(images, probabilities, iterations, *values),
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8),
            tf.TensorSpec([None, None, None, None], tf.float32),
        ] + [scalar] * 5,
    )
