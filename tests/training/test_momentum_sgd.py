"""MomentumSGD (deeplab_tf.training.momentum_sgd): SGD with momentum as one fused kernel per
variable. Its updates equal the momentum formula computed in NumPy, over several steps and a
changing learning rate; the graph runs one fused kernel per variable; Nesterov, momentum 0 and
sparse gradients take Keras' update, which also matches its formula."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.training.momentum_sgd import MomentumSGD

SHAPES = [(3, 3, 4, 5), (5,), (7, 2)]
LEARNING_RATES = [0.1, 0.05, 0.02]


def numpy_momentum(weights, gradients, momentum, nesterov):
    """Returns the weights after one step per entry of `LEARNING_RATES` (float64): m <- mu m - lr g,
    then w <- w + m, or w <- w + mu m - lr g with Nesterov; `gradients[step][i]` for variable i."""
    weights = [w.astype(np.float64) for w in weights]
    moments = [np.zeros_like(w) for w in weights]
    for lr, step_gradients in zip(LEARNING_RATES, gradients):
        for i, g in enumerate(step_gradients):
            moments[i] = momentum * moments[i] - lr * g
            weights[i] += momentum * moments[i] - lr * g if nesterov else moments[i]
    return weights


def run_steps(optimizer, weights, gradients):
    """Returns the variables' values after `optimizer` applied each step's gradients in one
    `tf.function`, the learning rate set to `LEARNING_RATES[step]` before each."""
    variables = [keras.Variable(w) for w in weights]
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))
    for lr, step_gradients in zip(LEARNING_RATES, gradients):
        optimizer.learning_rate.assign(lr)
        apply([tf.constant(g) for g in step_gradients])
    return [v.numpy() for v in variables]


@pytest.fixture
def weights_and_gradients():
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    gradients = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in LEARNING_RATES]
    return weights, gradients


@pytest.mark.parametrize("momentum, nesterov", [(0.9, False), (0.0, False), (0.9, True)])
def test_updates_match_the_numpy_formula(momentum, nesterov, weights_and_gradients):
    weights, gradients = weights_and_gradients
    ours = run_steps(MomentumSGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov), weights, gradients)
    for got, want in zip(ours, numpy_momentum(weights, gradients, momentum, nesterov)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_one_fused_kernel_per_variable_and_keras_equal_updates(weights_and_gradients):
    """The dense momentum update is one ResourceApplyKerasMomentum per variable (Keras' SGD runs
    none), and after three steps the weights equal Keras' SGD's to float32 rounding."""
    weights, gradients = weights_and_gradients
    op_counts = {}
    for name, cls in (("ours", MomentumSGD), ("keras", keras.optimizers.SGD)):
        optimizer = cls(learning_rate=0.1, momentum=0.9)
        variables = [keras.Variable(w) for w in weights]
        optimizer.build(variables)
        graph = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables))).get_concrete_function(
            [tf.TensorSpec(s, tf.float32) for s in SHAPES]).graph
        op_counts[name] = sum(op.type == "ResourceApplyKerasMomentum" for op in graph.get_operations())
    assert op_counts == {"ours": len(SHAPES), "keras": 0}
    ours = run_steps(MomentumSGD(learning_rate=0.1, momentum=0.9), weights, gradients)
    theirs = run_steps(keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), weights, gradients)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_sparse_gradients_take_keras_update():
    """An embedding-style `tf.IndexedSlices` gradient updates only its rows, as the formula says."""
    variable = keras.Variable(np.ones((4, 2), np.float32))
    optimizer = MomentumSGD(learning_rate=0.5, momentum=0.9)
    optimizer.build([variable])
    sparse = tf.IndexedSlices(tf.constant([[2.0, 4.0]]), tf.constant([1]), tf.constant([4, 2]))
    tf.function(lambda: optimizer.apply_gradients([(sparse, variable)]))()
    np.testing.assert_allclose(variable.numpy(), [[1, 1], [0, -1], [1, 1], [1, 1]])
