"""Published (official) model files as a source of weights for an experiment's model.

`is_published_model(path)` tells a published file from a deeplab-tf checkpoint, and
`load_published_model(model, path)` imports it: the weights are read in their own format, put
into the official architecture, then copied into `model` (`initialize.initialize_from_folded`).
Formats: a TF.js graph model folder (or its `model.json`) of the official DeepLabv3
MobileNetV2 (`deeplabv3_mnv2_pascal_trainval`, as in `../shared/data/official_deeplab/`).
"""

import os

import keras

from deeplab_tf.pretrained.initialize import initialize_from_folded
from deeplab_tf.pretrained.official_mobilenet_v2 import build_official_mobilenet_v2
from deeplab_tf.pretrained.tfjs_graph import read_tfjs_graph_model
from deeplab_tf.pretrained.tfjs_mobilenet_v2 import load_tfjs_mobilenet_v2


def _tfjs_model_json(path: str) -> str | None:
    """Returns the `model.json` of the TF.js graph model at `path` (the file or its folder), or None."""
    candidate = os.path.join(path, "model.json") if os.path.isdir(path) else path
    return candidate if os.path.basename(candidate) == "model.json" and os.path.isfile(candidate) else None


def is_published_model(path: str) -> bool:
    """Returns True if `path` is a published model file this module imports."""
    return _tfjs_model_json(path) is not None


def load_published_model(model: keras.Model, path: str, log=None) -> str:
    """Sets the weights of `model` from the published model at `path`; returns a description
    of what was loaded ("TF.js graph model <path> (N layers)").

    Raises ValueError (one line) when `path` is no published model this module reads, or when
    its tensors or layers do not fit `model` (see `initialize_from_folded`)."""
    model_json = _tfjs_model_json(path)
    if model_json is None:
        raise ValueError(f"{path} is not a published model deeplab-tf reads (a TF.js graph model folder)")
    source = read_tfjs_graph_model(model_json)
    official = build_official_mobilenet_v2()
    load_tfjs_mobilenet_v2(official, source.weights)
    layers = initialize_from_folded(model, official, log=log)
    return f"TF.js graph model {model_json} ({len(layers)} layers)"
