"""oneDNN's weight cache: on for processes that serve a SavedModel, refused for training.

TensorFlow's oneDNN convolutions (and matmuls) reorder their weights into the blocked layout of
the kernel at every call. With the environment variable `TF_ONEDNN_ASSUME_FROZEN_WEIGHTS` true
each op reorders its weights once, at its first call, and reuses that copy for the life of the
process: a served DeepLabv3 ResNet-50 (513x513) took 0.436 instead of 0.460 s in float32 and
0.231 instead of 0.245 s in bfloat16 on a 2-core AMD EPYC Zen 4 (BENCHMARKS.md, "oneDNN's weight
cache when serving"). TensorFlow reads the variable once per process, at the first such op it
builds, and applies it to every op of the process.

The cache never looks at the weights again, so a weight that changes after its op's first call
is silently ignored: training under it keeps computing the forward pass with the initial
weights. A process that loads a SavedModel and only serves it is safe (its variables are
restored before any call), which is what `cache_served_weights` is for; `refuse_for_training`
stops a training process that inherited the variable.
"""

import os

FROZEN_WEIGHTS_VARIABLE = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"
# How TensorFlow's ReadBoolFromEnvVar reads a boolean (case-insensitive); anything else is an error there.
_TRUE, _FALSE = ("1", "true"), ("0", "false")


def cache_served_weights() -> tuple[bool, str]:
    """Turns the weight cache on for this process unless the environment already sets it.

    Call it before the process builds any TensorFlow op, and only in a process whose models'
    weights never change after their first call (one that loads SavedModels and serves them).

    Returns:
        `(on, line)`: whether the cache is on, and one line saying so and why, for the log.

    Raises:
        ValueError naming the variable and its value when the environment sets it to something
        TensorFlow does not read as a boolean.
    """
    value = os.environ.get(FROZEN_WEIGHTS_VARIABLE)
    if value is None:
        os.environ[FROZEN_WEIGHTS_VARIABLE] = "1"
        on, reason = True, "set by deeplab-tf for serving"
    else:
        on, reason = _parse(value), f"{FROZEN_WEIGHTS_VARIABLE}={value} in the environment"
    return on, f"oneDNN weight cache {'on' if on else 'off'} ({reason})"


def refuse_for_training() -> None:
    """Raises ValueError when the environment turns the weight cache on, as training under it
    would never use its updated weights in the forward pass; returns None otherwise."""
    value = os.environ.get(FROZEN_WEIGHTS_VARIABLE)
    if value is not None and _parse(value):
        raise ValueError(
            f"{FROZEN_WEIGHTS_VARIABLE}={value} is set: oneDNN would keep every convolution's first weights "
            "for the whole process, so training would not change what the model computes. Unset it (or set "
            "it to 0) for training; it is meant for processes that only serve a SavedModel.")


def _parse(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{FROZEN_WEIGHTS_VARIABLE}={value!r} is not a boolean TensorFlow reads (1, 0, true, false)")
