"""Loss (values, gradients, label checks, each tuned form) and schedule against direct NumPy
formulas."""

import json

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.training import losses
from deeplab_tf.training.losses import masked_sparse_cross_entropy
from deeplab_tf.training.losses import softmax_cross_entropy
from deeplab_tf.training.schedules import PolyDecay
from tests.layers.test_autotune import write_cache


def test_cross_entropy_ignores_255():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(2, 5, 4))
    labels[0, :2] = 255
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    expected = -np.mean(np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0][valid])
    assert float(masked_sparse_cross_entropy(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(masked_sparse_cross_entropy(np.full((1, 2, 2), 255), logits[:1, :2, :2])) == 0.0


def test_poly_decay():
    schedule = PolyDecay(0.01, 100, 0.9)
    for step in (0, 1, 50, 99, 100, 150):
        expected = 0.01 * (1 - min(step, 100) / 100) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_weighted_cross_entropy_divides_by_labelled_pixels():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(1, 4, 6, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(1, 4, 6))
    labels[0, 0] = 255
    weights = np.array([0.5, 2.0, 3.0], np.float32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = labels != 255
    nll = -np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    expected = (nll * weights[np.where(valid, labels, 0)])[valid].sum() / valid.sum()
    assert float(masked_sparse_cross_entropy(labels, logits, class_weights=weights)) == pytest.approx(expected, rel=1e-5)


def test_poly_decay_with_warmup():
    schedule = PolyDecay(0.05, 100, 0.9, warmup_steps=10)
    for step in (0, 4, 9, 10, 50, 100):
        expected = 0.05 * (1 - step / 100) ** 0.9 * min(1.0, (step + 1) / 10)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)
    with pytest.raises(ValueError, match="warmup_steps"):
        PolyDecay(0.05, 100, warmup_steps=100)


def test_cross_entropy_gradient_matches_numpy():
    """d loss / d logits = (softmax - one_hot(label)) * weight / labelled pixels, zero where ignored."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, size=(2, 3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(2, 3, 5))
    labels[1, 0] = 255
    weights = np.array([1.0, 0.5, 2.0, 3.0], np.float32)
    x = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = masked_sparse_cross_entropy(labels, x, class_weights=weights)
    gradient = tape.gradient(loss, x).numpy()
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    expected = (softmax - np.eye(4)[safe]) * (weights[safe] * valid / valid.sum())[..., None]
    np.testing.assert_allclose(gradient, expected, atol=1e-6)


def test_cross_entropy_of_large_logits_is_finite():
    """Logits of 1e4 (exp overflows float32) give the NumPy value, log(2) for two equal logits."""
    logits = np.array([[[[1e4, 1e4, -1e4]]]], np.float32)
    assert float(softmax_cross_entropy(np.array([[[0]]]), tf.constant(logits))[0, 0, 0]) == pytest.approx(np.log(2.0), rel=1e-6)


@pytest.mark.parametrize("label", (3, -1, 254))
def test_a_label_outside_the_classes_is_refused(label):
    """A label that is not the ignore label and not a class fails with an error naming the range,
    rather than a one-hot of zeros giving a wrong loss."""
    labels = np.zeros((1, 2, 2), np.int64)
    labels[0, 1, 1] = label
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[0, number of classes\)"):
        masked_sparse_cross_entropy(labels, np.zeros((1, 2, 2, 3), np.float32))


def test_under_xla_a_label_outside_the_classes_gives_nan():
    """XLA drops the label check; the pixel's loss is NaN then (what the fused op gives under XLA),
    which the trainer's non-finite loss check stops on, never a finite wrong loss."""
    labels = np.zeros((1, 2, 2), np.int64)
    labels[0, 1, 1] = 3
    loss = tf.function(masked_sparse_cross_entropy, jit_compile=True)(labels, np.zeros((1, 2, 2, 3), np.float32))
    assert np.isnan(float(loss))


LOSS_KEY = "cross_entropy train float32 logits=2x3x5x4"


def loss_and_gradient(labels, logits):
    """The masked loss of `logits` (NumPy [2, 3, 5, 4]) and its gradient, in a traced training step."""
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = masked_sparse_cross_entropy(labels, x)
        return loss, tape.gradient(loss, x)
    return step(tf.constant(logits))


@pytest.mark.parametrize("pick", sorted(losses.CROSS_ENTROPY_FORMS))
def test_each_tuned_form_gives_the_numpy_loss_and_gradient(pick, cache_file, timed, monkeypatch):
    """With a cached pick, that form (and only it) computes the loss, untimed: the NumPy loss and
    its gradient `(softmax - one_hot(label)) / labelled pixels`, zero where ignored."""
    write_cache(cache_file, {LOSS_KEY: pick})
    called = []
    monkeypatch.setattr(losses, "CROSS_ENTROPY_FORMS", {
        name: (lambda labels, logits, name=name, form=form: called.append(name) or form(labels, logits))
        for name, form in losses.CROSS_ENTROPY_FORMS.items()})
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 4, size=(2, 3, 5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=(2, 3, 5))
    labels[0, 1] = 255
    loss, gradient = loss_and_gradient(labels, logits)
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    log_softmax = logits - logits.max(-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_softmax, safe[..., None], -1)[..., 0]
    assert float(loss) == pytest.approx(nll[valid].mean(), rel=1e-5)
    expected = (np.exp(log_softmax) - np.eye(4)[safe]) * (valid / valid.sum())[..., None]
    np.testing.assert_allclose(gradient.numpy(), expected, atol=1e-6)
    assert called == [pick] and not timed


def test_the_loss_form_is_timed_once_and_cached(cache_file):
    """Without a cached pick both forms are timed for real (forward + gradient), the pick is
    cached under the logits' shape, and the next trace reads it."""
    logits = np.random.default_rng(6).normal(size=(2, 3, 5, 4)).astype(np.float32)
    labels = np.zeros((2, 3, 5), np.int64)
    loss_and_gradient(labels, logits)
    entry = json.loads(cache_file.read_text())["choices"][LOSS_KEY]
    assert sorted(entry["ms"]) == sorted(losses.CROSS_ENTROPY_FORMS) and entry["pick"] in losses.CROSS_ENTROPY_FORMS
    cache_file.write_text(cache_file.read_text().replace(f'"pick": "{entry["pick"]}"', '"pick": "fused"'))
    before = cache_file.read_text()
    loss_and_gradient(labels, logits)
    assert cache_file.read_text() == before
