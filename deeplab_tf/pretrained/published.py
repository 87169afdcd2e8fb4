"""Published (official) model files as a source of weights for an experiment's model.

`is_published_model(path)` tells a published file from a deeplab-tf checkpoint, and
`load_published_model(model, path)` imports it into `model`:
- a TF.js graph model folder (or its `model.json`): the official DeepLabv3 MobileNetV2
  (`deeplabv3_mnv2_pascal_trainval`), batch norms folded;
- a float `.tflite` file: the official DeepLabv3 MobileNetV2 depth 0.5 (`deeplabv3_257_mv_gpu`),
  batch norms folded;
- a TF1 checkpoint of the official zoo (its prefix `.../model.ckpt-N`, or the folder holding
  it): DeepLabv3 MobileNetV2 or DeepLabv3+ Xception-65, batch norms as trained;
- a frozen graph (`frozen_inference_graph.pb`) of the same.
Folded sources are loaded into the official architecture, then copied into `model`
(`initialize.initialize_from_folded`); TF1 variables go straight into `model`
(`tf1_deeplab.load_tf1_weights`). A classifier of another number of classes than the source's is
left at its initialisation (transfer to another dataset) and logged. Layers left at their
initialisation (that classifier, a v3+ decoder the source lacks) are what fine-tuning starts from
(`partial`, training's `train.init_checkpoint`); anywhere else (export, evaluation) such a load is
refused, naming them.
"""

import glob
import os

import keras
import tensorflow as tf

from deeplab_tf.pretrained.frozen_graph import frozen_variables, read_frozen_graph
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.pretrained.initialize import initialize_from_folded, layers_left
from deeplab_tf.pretrained.official_config import official_model_config
from deeplab_tf.pretrained.official_mobilenet_v2 import build_official_mobilenet_v2
from deeplab_tf.pretrained.tf1_checkpoint import read_tf1_checkpoint
from deeplab_tf.pretrained.tf1_deeplab import load_tf1_weights
from deeplab_tf.pretrained.tfjs_graph import read_tfjs_graph_model
from deeplab_tf.pretrained.tfjs_mobilenet_v2 import load_tfjs_mobilenet_v2
from deeplab_tf.pretrained.tflite_file import read_export_metadata, read_tflite_model
from deeplab_tf.pretrained.tflite_mobilenet_v2 import load_tflite_mobilenet_v2

OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
"""Present in TF2 (object-based) checkpoints, as deeplab-tf writes them; absent in TF1 ones."""
TF1_CLASSIFIER_KERNEL = "logits/semantic/weights"


def _tfjs_model_json(path: str) -> str | None:
    """Returns the `model.json` of the TF.js graph model at `path` (the file or its folder), or None."""
    candidate = os.path.join(path, "model.json") if os.path.isdir(path) else path
    return candidate if os.path.basename(candidate) == "model.json" and os.path.isfile(candidate) else None


def _tf1_prefix(path: str) -> str | None:
    """Returns the prefix of the TF1 (name-based) checkpoint at `path` (a prefix, or a folder
    holding one `model.ckpt*` checkpoint), or None when `path` holds no such checkpoint (e.g. a
    deeplab-tf checkpoint, which is object-based) or is a prefix whose index cannot be read (the
    restore names the damage). Raises ValueError naming the checkpoint when `path` is a folder
    whose `model.ckpt*` index cannot be read (nothing else there would name it)."""
    folder = os.path.isdir(path)
    if folder:
        indexes = sorted(glob.glob(os.path.join(path, "model.ckpt*.index")))
        prefix = indexes[-1][:-len(".index")] if indexes else None
    else:
        prefix = path if os.path.isfile(path + ".index") else None
    if prefix is None:
        return None
    try:
        names = {name for name, _ in tf.train.list_variables(prefix)}
    except tf.errors.OpError as error:
        if not folder:
            return None
        raise unreadable_checkpoint(prefix, error) from None
    return None if OBJECT_GRAPH in names else prefix


def read_error(error: Exception) -> str:
    """Returns the first line of what `error`, raised reading a checkpoint (a TensorFlow OpError,
    or IndexError for some truncated data files), says."""
    return str(getattr(error, "message", error)).strip().split("\n")[0]


def unreadable_checkpoint(prefix: str, error: Exception) -> ValueError:
    """Returns the one-line error for checkpoint `prefix`, which could not be read (`error`)."""
    return ValueError(f"Checkpoint {prefix!r} is unreadable (a file of it missing or damaged): {read_error(error)}")


def _kind(path: str) -> str | None:
    """Returns "tfjs", "tflite", "frozen_graph", "tf1_checkpoint" or None for `path`."""
    if _tfjs_model_json(path):
        return "tfjs"
    if os.path.isfile(path) and path.endswith(".tflite"):
        return "tflite"
    if os.path.isfile(path) and path.endswith(".pb"):
        return "frozen_graph"
    return "tf1_checkpoint" if _tf1_prefix(path) else None


def is_published_model(path: str) -> bool:
    """Returns True if `path` is a published model file this module imports."""
    return _kind(path) is not None


def load_published_model(model: keras.Model, path: str, log=None, partial: bool = False) -> str:
    """Sets the weights of `model` from the published model at `path` (module docstring).
    Returns a description of what was loaded, e.g. "TF.js graph model PATH (54 layers)".

    `partial` allows layers of `model` to be left at their initialisation (fine-tuning).
    Raises ValueError (one line) when `path` is no published model this module reads, when its
    tensors or layers do not fit `model` (`initialize_from_folded`, `load_tf1_weights`), or,
    without `partial`, when it leaves layers of `model` at their initialisation, naming them."""
    description, left = _import(model, path, log)
    if left and not partial:
        more = f" and {len(left) - 5} more" if len(left) > 5 else ""
        raise ValueError(
            f"{path} leaves layers of model {model.name!r} at their random initialisation ({len(left)}: "
            f"{', '.join(left[:5])}{more}): it can only start a training of this experiment; train from it "
            f"with --override=train.init_checkpoint={path}, then use that run")
    return description


def _import(model: keras.Model, path: str, log=None) -> tuple[str, list[str]]:
    """Sets the weights of `model` from the published model at `path`; returns (what was loaded,
    the names of the layers of `model` left at their initialisation). Raises as
    `load_published_model`, `partial` aside."""
    kind = _kind(path)
    if kind in ("tfjs", "tflite"):
        if kind == "tfjs":
            model_json = _tfjs_model_json(path)
            source = f"TF.js graph model {model_json}"
            official = build_official_mobilenet_v2()
            load_tfjs_mobilenet_v2(official, read_tfjs_graph_model(model_json).weights)
        else:
            _refuse_own_export(path)
            source = f"TFLite model {path}"
            official = build_official_mobilenet_v2(official_model_config(depth_multiplier=0.5, output_stride=8))
            load_tflite_mobilenet_v2(official, read_tflite_model(path).weights)
        assigned = initialize_from_folded(model, official, log=log)
        return f"{source} ({len(assigned)} layers)", layers_left(model, assigned)
    if kind in ("tf1_checkpoint", "frozen_graph"):
        if kind == "frozen_graph":
            tensors, source = frozen_variables(read_frozen_graph(path).graph_def, path), f"frozen graph {path}"
        else:
            prefix = _tf1_prefix(path)
            tensors, source = read_tf1_checkpoint(prefix), f"TF1 checkpoint {prefix}"
        skip_classifier = _classes_differ(model, tensors, log)
        count = load_tf1_weights(model, tensors, skip_classifier=skip_classifier)
        return f"{source} ({count} tensors)", [CLASSIFIER_LAYER] if skip_classifier else []
    raise ValueError(f"{path} is not a published model deeplab-tf reads (a TF.js graph model folder, a .tflite "
                     f"file, a frozen graph .pb or a TF1 checkpoint of the official DeepLab zoo)")


def _refuse_own_export(path: str) -> None:
    """Raises ValueError when the .tflite `path` was written by `export.export_tflite`: its weights
    are the exported (folded, maybe quantised) model's, which no importer reads back."""
    export = read_export_metadata(path)
    if export is not None:
        raise ValueError(
            f"{path} is a deeplab-tf LiteRT export ({export.get('experiment')}, {export.get('precision')}), not a "
            f"published model: start from the checkpoint it was exported from ({export.get('checkpoint')}); "
            "evaluate or predict the file itself with --tflite")


def _classes_differ(model: keras.Model, tensors, log) -> bool:
    """Returns True (and logs it) when the source's classifier scores another number of classes
    than `model`'s classifier `CLASSIFIER_LAYER`."""
    ours = model.get_layer(CLASSIFIER_LAYER).weights[0].shape[-1]
    theirs = tensors[TF1_CLASSIFIER_KERNEL].shape[-1] if TF1_CLASSIFIER_KERNEL in tensors else ours
    if theirs != ours and log:
        log(f"Classifier {CLASSIFIER_LAYER!r} left at its initialisation: {theirs} pretrained classes, {ours} here")
    return theirs != ours
