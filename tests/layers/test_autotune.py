"""Speed tuning (deeplab_tf.layers.autotune): `auto` and the fused batch norm pick, among exact
candidates only, what ran fastest here, cache it in a JSON file and read it back; stale or
corrupt files are ignored with a warning; tuning is off by switch and under op determinism;
choices traced for XLA are keyed apart and timed compiled by XLA."""

import fcntl
import functools
import json
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.layers import AtrousConv2D
from deeplab_tf.layers import atrous_auto
from deeplab_tf.layers import atrous_conv
from deeplab_tf.layers import atrous_conv2d
from deeplab_tf.layers import atrous_depthwise_conv2d
from deeplab_tf.layers import autotune
from deeplab_tf.layers.atrous_implementations import IMPLEMENTATIONS
from deeplab_tf.layers.atrous_implementations import conv2d
from deeplab_tf.layers.atrous_implementations import depthwise_conv2d
from deeplab_tf.layers.fused_batch_norm import FusedBatchNormalization
from tests.cpu_capabilities import has_dilated_conv2d_gradients
from tests.layers.test_atrous_conv import assert_close
from tests.layers.test_atrous_conv import random_case
from tests.layers.test_atrous_conv import reference
from tests.layers.test_atrous_conv import reference_gradients
from tests.layers.test_atrous_conv import tape_gradients
from tests.layers.test_fused_batch_norm import layer_under
from tests.layers.test_fused_batch_norm import replica_training_step

SIZE = (9, 11)  # random_case: batch 2, 3 channels, 4 filters or multiplier 2
CONV_KEY = "atrous_conv2d train float32 input=2x9x11x3 kernel=3x3x3x4 rate=2 padding=same"
DEPTHWISE_KEY = "atrous_depthwise_conv2d train float32 input=2x9x11x3 kernel=3x3x3x2 rate=2 padding=same"
NORM_KEY = "batch_norm train float32 input=2x9x11x4"


@pytest.fixture
def picks(monkeypatch):
    """Returns the list of the implementations `auto` picks, one per call."""
    picked, select = [], atrous_conv.select_implementation
    monkeypatch.setattr(atrous_conv, "select_implementation", lambda *args: picked.append(select(*args)) or picked[-1])
    return picked


def write_cache(path, choices, **changes):
    """Writes a cache file of this machine holding `choices` ({key: pick}), with `changes` to its
    top-level fields (e.g. `format=0`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"format": autotune.FORMAT, "machine": autotune.machine(),
               "choices": {key: {"pick": pick, "ms": {}} for key, pick in choices.items()}, **changes}
    path.write_text(json.dumps(content))


def train_conv_and_norm(x, batch=2, xla=False):
    """A training step of a new AtrousConv2D(4, 3, rate=2) and a new fused batch norm on `x`
    [2, 9, 11, 3], traced for a batch of size `batch` (None: unknown), compiled by XLA and traced
    in `autotune.compiled_by_xla()` when `xla`: returns their gradients."""
    conv, norm = AtrousConv2D(4, 3, rate=2), FusedBatchNormalization()

    @tf.function(input_signature=[tf.TensorSpec([batch, *SIZE, 3])], jit_compile=xla or None)
    def step(x):
        with tf.GradientTape() as tape, autotune.compiled_by_xla(xla):
            y = norm(conv(x), training=True)
        return tape.gradient(y, conv.trainable_weights + norm.trainable_weights)

    return step(x)


CASES = [("conv", 1, "same"), ("conv", 2, "same"), ("conv", 4, "valid"), ("depthwise", 2, "same"),
         ("depthwise", 4, "valid")]


@pytest.mark.parametrize("op, rate, padding", CASES)
def test_auto_picks_only_among_exact_candidates(op, rate, padding, cache_file, picks):
    """Every candidate of the tuned shape gives the NumPy reference's outputs and gradients; the
    tuner (timing for real) picks one of them, in a training step and at inference."""
    depthwise = op == "depthwise"
    function = atrous_depthwise_conv2d if depthwise else atrous_conv2d
    x, w = random_case(SIZE, 3, depthwise, seed=rate)
    expected = reference(x, w, rate, padding, depthwise)
    g = np.random.default_rng(rate).standard_normal(expected.shape).astype(np.float32)
    expected_gradients = reference_gradients(x, w, g, rate, padding, depthwise)
    candidates = {training: atrous_auto.candidates(w.shape, rate, depthwise, "float32", training)
                  for training in (True, False)}
    for name in set(candidates[True]) | set(candidates[False]):
        run = lambda x, w, name=name: IMPLEMENTATIONS[name](depthwise_conv2d if depthwise else conv2d,
                                                            tf.constant(x), tf.constant(w), rate, padding)
        assert_close(run(x, w), expected)
        if name in candidates[True]:  # an inference-only candidate (`native` without this CPU's gradients)
            for gradient, want in zip(tape_gradients(run, x, w, g), expected_gradients):
                assert_close(gradient, want)

    gradients = tape_gradients(lambda x, w: function(x, w, rate, padding, "auto"), x, w, g)  # train
    assert_close(function(x, w, rate, padding, "auto"), expected)  # infer
    assert picks[0] in candidates[True] and picks[1] in candidates[False]
    for gradient, want in zip(gradients, expected_gradients):
        assert_close(gradient, want)
    choices = json.loads(cache_file.read_text())["choices"]
    assert {entry["pick"] for entry in choices.values()} == set(picks)


@pytest.mark.parametrize("dtype", ("float32", "bfloat16", "float16", "float64"))
def test_candidates_leave_out_what_this_cpu_cannot_run(dtype):
    """`native` is a training candidate of a dilated convolution only where this CPU has its
    gradients in the type (probed here independently); what cannot run is left out, not timed."""
    for rate in (2, 6):
        train = atrous_auto.candidates((3, 3, 8, 8), rate, False, dtype, True)
        assert ("native" in train) == has_dilated_conv2d_gradients(dtype)
        assert {"space_to_batch", "shifted_gemm", "tap_gradient"} <= set(train)
        depthwise = atrous_auto.candidates((3, 3, 8, 1), rate, True, dtype, True)
        assert "shifted_gemm" in depthwise and "tap_gradient" not in depthwise  # it runs native
    assert "space_to_batch" not in atrous_auto.candidates((3, 3, 8, 8), 1, False, dtype, True)  # = native
    assert "space_to_batch" not in atrous_auto.candidates((1, 1, 8, 8), 6, False, dtype, False)


def test_cache_file_format_and_a_second_build_reads_it(cache_file, monkeypatch):
    """The first build of a training step times every candidate (for real) and writes the file;
    a second build of the same shapes times nothing and picks the same."""
    timed, measure = [], autotune.measure
    monkeypatch.setattr(autotune, "measure", lambda runs, **kwargs: timed.extend(runs) or measure(runs, **kwargs))
    x = tf.random.stateless_normal([2, *SIZE, 3], seed=[1, 2])
    train_conv_and_norm(x)
    conv_candidates = atrous_auto.candidates((3, 3, 3, 4), 2, False, "float32", True)
    assert len(timed) == len(conv_candidates) + 2  # + fused and Keras batch norm
    content = json.loads(cache_file.read_text())
    assert content["format"] == 2  # the documented format
    assert content["machine"] == autotune.machine()
    assert content["machine"]["tensorflow"] == tf.__version__
    assert set(content["machine"]["cpu_flags"]) <= set(autotune.CPU_FLAGS)
    assert sorted(content["choices"]) == [CONV_KEY, NORM_KEY]
    assert set(content["choices"][CONV_KEY]["ms"]) == set(conv_candidates)
    assert content["choices"][CONV_KEY]["pick"] in conv_candidates
    assert content["choices"][NORM_KEY]["pick"] in ("fused", "keras")
    # No temporary left; the lock file stays (`autotune._locked`).
    assert sorted(path.name for path in cache_file.parent.iterdir()) == ["autotune.json", "autotune.json.lock"]

    train_conv_and_norm(x)
    assert len(timed) == len(conv_candidates) + 2
    assert json.loads(cache_file.read_text()) == content


def test_pick_is_the_fastest_first_on_ties_and_then_cached(cache_file, monkeypatch):
    runs = {name: object() for name in "abc"}
    seconds = {runs["a"]: 3.0, runs["b"]: 1.0, runs["c"]: 1.0}
    monkeypatch.setattr(autotune, "measure", lambda runs, **_: {name: seconds[run] for name, run in runs.items()})
    assert autotune.pick("some op", ("a", "b", "c"), lambda: runs) == "b"

    def fail():
        raise AssertionError("timed again")

    assert autotune.pick("some op", ("a", "b", "c"), fail) == "b"
    assert autotune.pick("single", ("a",), fail) == "a"
    assert json.loads(cache_file.read_text())["choices"]["some op"] == {
        "pick": "b", "ms": {"a": 3000.0, "b": 1000.0, "c": 1000.0}}


def test_a_process_waits_for_the_one_tuning_and_reads_its_pick(cache_file, timed):
    """Another process holding the cache's lock (here another open file, which `flock` treats
    the same): `pick` waits for it, then reads the pick it wrote instead of timing again."""
    cache_file.parent.mkdir(parents=True)
    picked = []
    with open(f"{cache_file}.lock", "a") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        waiting = threading.Thread(target=lambda: picked.append(
            autotune.pick("some op", ("a", "b"), lambda: {"a": None, "b": None})))
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and not timed
        write_cache(cache_file, {"some op": "b"})  # what the other process picked
    waiting.join(timeout=30)
    assert picked == ["b"] and not timed


def test_measure_takes_the_least_time_after_a_warm_up_with_the_runs_taking_turns(monkeypatch):
    """A warm-up call each, not counted; then one call of each run per round, each run until it
    has 3 runs and 0.02 s, so a burst of load (round 2 here) slows every run's call of that round
    and the least time leaves it out."""
    clock, calls = [0.0], []
    durations = {"slow": iter([9.0, 0.010, 0.050, 0.012]),
                 "fast": iter([9.0, 0.004, 0.012, 0.002, 0.005])}

    def run(name):
        calls.append(name)
        clock[0] += next(durations[name])

    monkeypatch.setattr(autotune.time, "perf_counter", lambda: clock[0])
    runs = {name: functools.partial(run, name) for name in durations}
    assert autotune.measure(runs) == {"slow": pytest.approx(0.010), "fast": pytest.approx(0.002)}
    # slow is done after 3 rounds (0.072 s); fast's 3 runs make 0.018 s, so it runs a 4th alone
    assert calls == ["slow", "fast"] + ["slow", "fast"] * 3 + ["fast"]


def test_measure_leaves_out_a_run_whose_warm_up_raises_one_of_the_given_errors():
    def fails():
        raise ValueError("no kernel")

    left_out = []
    seconds = autotune.measure({"fails": fails, "runs": lambda: None},
                               on_error=lambda name, error: left_out.append((name, str(error))), errors=(ValueError,))
    assert list(seconds) == ["runs"] and left_out == [("fails", "no kernel")]
    with pytest.raises(ValueError, match="no kernel"):  # not one of the errors given: raised
        autotune.measure({"fails": fails})


@pytest.mark.parametrize("pick", ["shifted_gemm", "space_to_batch"])
def test_the_pick_is_deterministic_given_a_cache_file(pick, cache_file, timed, monkeypatch):
    write_cache(cache_file, {CONV_KEY: pick})
    ran = []
    for name in IMPLEMENTATIONS:
        real = atrous_conv._IMPLEMENTATIONS[name]
        monkeypatch.setitem(atrous_conv._IMPLEMENTATIONS, name,
                            lambda *args, real=real, name=name: ran.append(name) or real(*args))
    x, w = random_case(SIZE, 3, depthwise=False)
    g = np.ones((2, *SIZE, 4), np.float32)
    for _ in range(3):
        tape_gradients(lambda x, w: atrous_conv2d(x, w, 2), x, w, g)
    assert ran == [pick] * 3 and not timed


def test_a_cached_pick_that_is_no_candidate_is_timed_again(cache_file, timed):
    write_cache(cache_file, {DEPTHWISE_KEY: "tap_gradient"})  # depthwise: tap_gradient is native
    x, w = random_case(SIZE, 3, depthwise=True)
    tape_gradients(lambda x, w: atrous_depthwise_conv2d(x, w, 2, "same", "auto"), x, w, np.ones((2, *SIZE, 6)))
    assert len(timed) == 3
    assert json.loads(cache_file.read_text())["choices"][DEPTHWISE_KEY]["pick"] == "native"


@pytest.mark.parametrize("strategy", [None, "one_device"])
@pytest.mark.parametrize("pick", ["fused", "keras", None])
def test_batch_norm_picks_compute_the_numpy_batch_norm(pick, strategy, cache_file, timed, monkeypatch):
    """With a cached pick, that candidate runs untimed; without one, both are timed (the layer's
    copies made while the step is traced) and the tie goes to "fused". The same in a step under a
    distribution strategy (the trainer's case). Each gives the NumPy batch norm."""
    if pick:
        write_cache(cache_file, {NORM_KEY: pick})
    fused_calls = []
    fused = FusedBatchNormalization._fused
    monkeypatch.setattr(FusedBatchNormalization, "_fused",
                        lambda self, *args: fused_calls.append(1) or fused(self, *args))
    distribution = tf.distribute.OneDeviceStrategy("/cpu:0") if strategy else tf.distribute.get_strategy()
    layer, gamma, beta = layer_under(distribution)
    x = np.random.default_rng(3).normal(1.0, 3.0, (2, *SIZE, 4)).astype(np.float32)
    step = replica_training_step(layer, distribution)
    outputs, _ = step(tf.constant(x))
    mean, variance = x.astype(np.float64).mean((0, 1, 2)), x.astype(np.float64).var((0, 1, 2))
    assert_close(outputs, (x - mean) / np.sqrt(variance + 1e-3) * gamma + beta)
    assert_close(layer.moving_mean, 0.1 * mean)
    assert_close(layer.moving_variance, 0.9 + 0.1 * variance)
    assert len(timed) == (0 if pick else 2)
    assert bool(fused_calls) == ((pick or "fused") == "fused")
    assert json.loads(cache_file.read_text())["choices"][NORM_KEY]["pick"] == (pick or "fused")


STALE = {
    "not_json": lambda path: path.write_text('{"format": 1, "choi'),
    "not_an_object": lambda path: path.write_text("[1, 2]"),
    "entry_without_pick": lambda path: path.write_text(json.dumps(
        {"format": autotune.FORMAT, "machine": autotune.machine(), "choices": {CONV_KEY: "native"}})),
    "other_format": lambda path: write_cache(path, {CONV_KEY: "native"}, format=1),
    "other_machines_not_a_list": lambda path: write_cache(path, {CONV_KEY: "native"}, other_machines={}),
    "other_machine_without_choices": lambda path: write_cache(
        path, {CONV_KEY: "native"}, other_machines=[{"machine": {"cpu": "Another CPU"}}]),
}


@pytest.mark.parametrize("problem", sorted(STALE))
def test_a_stale_or_corrupt_cache_file_is_ignored_with_a_warning(problem, cache_file, timed):
    cache_file.parent.mkdir(parents=True)
    STALE[problem](cache_file)
    x, w = random_case(SIZE, 3, depthwise=False)
    with pytest.warns(UserWarning, match=r"ignoring the (unreadable )?autotune cache"):
        tape_gradients(lambda x, w: atrous_conv2d(x, w, 2), x, w, np.ones((2, *SIZE, 4)))
    assert len(timed) == len(atrous_auto.candidates((3, 3, 3, 4), 2, False, "float32", True))
    content = json.loads(cache_file.read_text())  # replaced by this machine's file
    assert content["format"] == autotune.FORMAT and content["machine"] == autotune.machine()
    assert list(content["choices"]) == [CONV_KEY]


def another_machine(**changes):
    """Returns this machine's record with `changes`, e.g. cpu="Another CPU"."""
    return {**autotune.machine(), **changes}


@pytest.mark.parametrize("changes", [{"cpu": "Another CPU"}, {"tensorflow": "2.0.0"},
                                     {"TF_ENABLE_ONEDNN_OPTS": "another value"}])
def test_picks_of_another_machine_are_kept_beside_this_ones(changes, cache_file, timed, recwarn):
    """A home folder shared by two CPU models, or runs alternating TF_ENABLE_ONEDNN_OPTS: each
    machine's picks stay in the file (before, the other machine's file was replaced, so
    alternating timed everything again each time), and are read back without timing."""
    theirs = another_machine(**changes)
    write_cache(cache_file, {CONV_KEY: "space_to_batch", "their op": "a"}, machine=theirs)
    x, w = random_case(SIZE, 3, depthwise=False)
    tape_gradients(lambda x, w: atrous_conv2d(x, w, 2), x, w, np.ones((2, *SIZE, 4)))
    assert len(timed) == len(atrous_auto.candidates((3, 3, 3, 4), 2, False, "float32", True))
    assert not [warning for warning in recwarn if "autotune" in str(warning.message)]
    content = json.loads(cache_file.read_text())
    assert content["machine"] == autotune.machine() and list(content["choices"]) == [CONV_KEY]
    assert content["other_machines"] == [{"machine": theirs, "choices": {
        CONV_KEY: {"pick": "space_to_batch", "ms": {}}, "their op": {"pick": "a", "ms": {}}}}]

    # The other machine again: its picks are read from `other_machines`, nothing is timed.
    timed.clear()
    write_cache(cache_file, {"this op": "b"}, machine=another_machine(cpu="A third CPU"),
                other_machines=[content["other_machines"][0], {"machine": autotune.machine(),
                                                               "choices": {CONV_KEY: {"pick": "native"}}}])
    assert autotune.pick(CONV_KEY, ("native", "space_to_batch"), lambda: pytest.fail("timed again")) == "native"
    assert not timed


def test_the_cache_keeps_the_most_recent_machines(cache_file, monkeypatch):
    """Each machine that writes goes first; beyond `MAX_MACHINES`, the least recent is dropped."""
    monkeypatch.setattr(autotune, "measure", lambda runs, **_: dict.fromkeys(runs, 1e-3))
    records = [another_machine(cpu=f"CPU {number}") for number in range(autotune.MAX_MACHINES + 2)]
    for number in range(autotune.MAX_MACHINES + 2):
        monkeypatch.setattr(autotune, "machine", lambda number=number: records[number])
        autotune.pick(f"op {number}", ("a", "b"), lambda: {"a": None, "b": None})
    content = json.loads(cache_file.read_text())
    kept = [content["machine"]["cpu"]] + [section["machine"]["cpu"] for section in content["other_machines"]]
    assert kept == [f"CPU {number}" for number in range(autotune.MAX_MACHINES + 1, 1, -1)]
    assert content["other_machines"][0]["choices"] == {f"op {autotune.MAX_MACHINES}": {"pick": "a", "ms": {
        "a": 1.0, "b": 1.0}}}


def test_an_unwritable_cache_warns_and_still_picks(tmp_path, monkeypatch, timed):
    monkeypatch.setenv(autotune.SWITCH, "1")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file: no folder in it
    x, w = random_case(SIZE, 3, depthwise=False)
    with pytest.warns(UserWarning, match="cannot write the autotune cache"):
        grads = tape_gradients(lambda x, w: atrous_conv2d(x, w, 2), x, w, np.ones((2, *SIZE, 4)))
    assert timed and all(grad is not None for grad in grads)


@pytest.mark.parametrize("switch", ["environment", "op_determinism", "unknown_batch"])
def test_without_tuning_the_fixed_rules_apply(switch, cache_file, timed, picks, monkeypatch):
    deterministic = switch == "op_determinism"
    if switch == "environment":
        monkeypatch.setenv(autotune.SWITCH, "0")
    if deterministic:
        tf.config.experimental.enable_op_determinism()  # turned off after the test (conftest)
    fused_calls = []
    fused = FusedBatchNormalization._fused
    monkeypatch.setattr(FusedBatchNormalization, "_fused",
                        lambda self, *args: fused_calls.append(1) or fused(self, *args))
    batch = None if switch == "unknown_batch" else 2
    train_conv_and_norm(tf.zeros([2, *SIZE, 3]), batch)
    assert not timed and not cache_file.exists()
    assert picks and set(picks) == {atrous_auto.fixed_rule((batch, *SIZE, 3), (3, 3, 3, 4), 2, "same", False,
                                                          "float32", deterministic)}
    assert fused_calls  # the fused kernel, as without tuning


def test_tuning_is_on_unless_switched_off_or_deterministic(monkeypatch):
    monkeypatch.delenv(autotune.SWITCH)
    assert autotune.enabled()
    tf.config.experimental.enable_op_determinism()  # turned off after the test (conftest)
    assert not autotune.enabled()


def test_a_bad_switch_value_is_refused(monkeypatch):
    monkeypatch.setenv(autotune.SWITCH, "yes")
    with pytest.raises(ValueError, match="DEEPLAB_TF_AUTOTUNE='yes'; allowed: 0"):
        autotune.enabled()


def test_timed_steps_run_the_gradients_also_while_a_function_is_traced():
    """A training run built and run from inside a traced function under a gradient tape (as in a
    training step) computes the outputs and the gradients, eagerly, and leaves the outer tape
    alone. (It must return the outputs: else TensorFlow prunes a convolution's forward pass,
    whose output no gradient reads, and the forward pass is not timed.)"""
    x, w = random_case(SIZE, 3, depthwise=False)
    g_ones = np.ones((2, *SIZE, 4))
    rate = 2 if has_dilated_conv2d_gradients("float32") else 1

    def timed_gradients():
        inputs = [tf.constant(x), tf.constant(w)]
        run = autotune.timed_step(lambda x, w: conv2d(x, w, "same", rate), inputs, training=True)
        outputs, gradients = run()
        return outputs.numpy(), [gradient.numpy() for gradient in gradients], tf.executing_eagerly()

    results = []

    @tf.function
    def outer(v):
        with tf.GradientTape() as tape:
            tape.watch(v)
            results.append(autotune.eagerly(timed_gradients))
            y = 2 * v
        return tape.gradient(y, v)

    assert float(outer(tf.constant(1.0))) == 2.0
    (outputs, gradients, eager), = results
    assert eager
    assert_close(outputs, reference(x, w, rate, "same", False))
    for gradient, want in zip(gradients, reference_gradients(x, w, g_ones, rate, "same", False)):
        assert_close(gradient, want)


def test_choices_traced_for_xla_are_keyed_apart_and_timed_compiled_by_xla(cache_file):
    """Inside `compiled_by_xla()` keys end with "xla" and the runs `prepare` builds are compiled by
    XLA: a candidate with an op XLA cannot compile (a NumPy function) is left out there with a
    warning, and timed outside; none compiling is an error naming the key. The state nests and is
    this thread's only."""
    x = tf.constant([1.0, 1.0, 2.0])

    def prepare(names=("numpy", "identity")):  # run in the timing thread
        runs = {"numpy": lambda: tf.numpy_function(np.copy, [x], tf.float32),
                "numpy_negative": lambda: tf.numpy_function(np.negative, [x], tf.float32),
                "identity": lambda: tf.identity(x)}
        return {name: autotune.timed_step(runs[name], [], False) for name in names}

    plain = autotune.key("op", False, "float32", input=(3,))
    assert plain == "op infer float32 input=3" and not autotune.xla()
    with autotune.compiled_by_xla():
        key = autotune.key("op", False, "float32", input=(3,))
        assert key == "op infer float32 input=3 xla"
        with pytest.warns(UserWarning, match="'numpy' does not compile under XLA"):
            assert autotune.pick(key, ("numpy", "identity"), prepare) == "identity"
        numpy_only = ("numpy", "numpy_negative")
        with (pytest.raises(ValueError, match="no candidate of 'other infer float32 input=3 xla'"),
              pytest.warns(UserWarning)):
            autotune.pick(autotune.key("other", False, "float32", input=(3,)), numpy_only, lambda: prepare(numpy_only))
        with autotune.compiled_by_xla(False):
            assert not autotune.xla()
        assert autotune.xla() and not autotune.eagerly(autotune.xla)
    assert not autotune.xla()
    assert autotune.pick(plain, ("numpy", "identity"), prepare) in ("numpy", "identity")
    choices = json.loads(cache_file.read_text())["choices"]
    assert sorted(choices) == [plain, key]
    assert set(choices[key]["ms"]) == {"identity"} and set(choices[plain]["ms"]) == {"numpy", "identity"}


def test_a_step_compiled_by_xla_tunes_under_its_own_keys_and_computes_the_same(cache_file, timed):
    """An XLA-compiled training step traced in `compiled_by_xla()` picks under "... xla" keys,
    never reading the picks of the same shapes without XLA, and gives the gradients of the step
    without XLA."""
    x = tf.random.stateless_normal([2, *SIZE, 3], seed=[1, 2])
    keras.utils.set_random_seed(0)
    expected = train_conv_and_norm(x)
    first = len(timed)
    keras.utils.set_random_seed(0)
    gradients = train_conv_and_norm(x, xla=True)
    assert len(timed) == 2 * first  # timed again: the picks without XLA are not read
    assert sorted(json.loads(cache_file.read_text())["choices"]) == sorted(
        [CONV_KEY, NORM_KEY, f"{CONV_KEY} xla", f"{NORM_KEY} xla"])
    for ours, theirs in zip(gradients, expected):
        assert_close(ours.numpy(), theirs.numpy())
