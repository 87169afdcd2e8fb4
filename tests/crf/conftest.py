"""Shared CRF test helpers: a brute-force dense mean-field reference and small test scenes.

The reference computes exact Gaussian sums over all pixel pairs in float64 NumPy with
densecrf's model (self term included, symmetric normalisation n_i = 1 / sqrt(sum_j k_ij),
Potts weights added to -unary, softmax); it shares no code with deeplab_tf.crf.
"""

import numpy as np
import pytest


def exact_kernel(features) -> np.ndarray:
    """Returns float64 [N, N]: exp(-|f_i - f_j|^2 / 2) of features [N, d], symmetrically normalised."""
    features = np.asarray(features, np.float64)
    kernel = np.exp(-0.5 * ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1))
    norm = 1.0 / np.sqrt(kernel.sum(1))
    return norm[:, None] * kernel * norm[None, :]


def _softmax(x):
    x = np.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


def dense_mean_field(image, probabilities, params, floor: float = 1e-5) -> np.ndarray:
    """Returns float64 [H, W, C]: `params.iterations` exact mean-field updates of the dense CRF."""
    height, width, classes = probabilities.shape
    rows, columns = np.mgrid[0:height, 0:width]
    positions = np.stack([columns, rows], -1).reshape(-1, 2).astype(np.float64)
    colours = np.asarray(image, np.float64).reshape(-1, 3)
    spatial = exact_kernel(positions / params.sigma_gamma)
    bilateral = exact_kernel(np.concatenate([positions / params.sigma_alpha, colours / params.sigma_beta], -1))
    unary = -np.log(np.maximum(probabilities.reshape(-1, classes).astype(np.float64), floor))
    q = _softmax(-unary)
    for _ in range(params.iterations):
        q = _softmax(-unary + params.w2 * spatial @ q + params.w1 * bilateral @ q)
    return q.reshape(height, width, classes)


def make_scene(height: int, width: int, classes: int, seed: int = 0):
    """Returns (image uint8 [H, W, 3], probabilities float32 [H, W, C]): two coloured halves with
    texture, and noisy class scores that favour class 0 on the right half."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.int64)
    image[:, width // 2:] = (200, 40, 40)
    image[: height // 2] += 30
    image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
    logits = rng.normal(size=(height, width, classes)) * 1.5
    logits[:, width // 2:, 0] += 1.0
    probabilities = np.exp(logits)
    return image, (probabilities / probabilities.sum(-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def reference():
    """The brute-force mean-field function `dense_mean_field(image, probabilities, params)`."""
    return dense_mean_field


@pytest.fixture
def scene():
    """The scene maker `make_scene(height, width, classes, seed=0)`."""
    return make_scene


@pytest.fixture(scope="session")
def camvid_examples(camvid_dir):
    """Three CamVid val images downscaled to 90x120, with labels (255 = void) and blobby unaries:
    list of (image uint8 [90, 120, 3], label uint8 [90, 120], probabilities float32 [90, 120, 11])."""
    import cv2

    from deeplab_tf.crf.synthetic_unary import blobby_probabilities
    from deeplab_tf.data.camvid_folder import CamVidFolder

    examples = []
    for index, (image_path, label_path) in enumerate(CamVidFolder(camvid_dir).pairs("val")[:3]):
        image = cv2.resize(cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB), (120, 90), interpolation=cv2.INTER_AREA)
        label = cv2.resize(cv2.imread(label_path, cv2.IMREAD_UNCHANGED), (120, 90), interpolation=cv2.INTER_NEAREST)
        label[label == 11] = 255
        examples.append((image, label, blobby_probabilities(label, 11, seed=index, stride=2)))
    return examples
