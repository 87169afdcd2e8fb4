"""Keras Applications' published ImageNet weight files, loaded by layer name.

The files (e.g. `resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`) are legacy Keras HDF5
weight files: the root attribute `layer_names` lists the layer names (as bytes), each layer
has a group of that name whose attribute `weight_names` lists its weights in Keras' legacy
order (trainable, then non-trainable), and each weight is the dataset `group[weight_name]`.
Files written by `model.save` nest the same layout under a group `model_weights`.

Keras' own `model.load_weights(path)` matches such a file to a model by layer position, so a
cut or modified model fails with a bare count mismatch. `load_weights_by_name` matches by
name instead and names the file and the first layer that does not fit.

Keras Applications publishes no weights for DeepLab's Xception-65: its `xception_*.h5` files
belong to Keras' `Xception`, a different network (Chollet's 36-conv Xception with max-pooling
entry blocks and 8 middle blocks, not the aligned 65-layer variant of DeepLabv3+), so no
adapter maps them; see `xception65.build_xception65` for how that backbone gets weights.
"""

import os

import h5py
import keras


def _strings(values):
    """Returns the HDF5 string attribute `values` (bytes or str items) as a list of str."""
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _weights_group(file, path):
    """Returns the group of `file` holding `layer_names`; raises ValueError if there is none."""
    for group in (file, file.get("model_weights")):
        if isinstance(group, h5py.Group) and "layer_names" in group.attrs:
            return group
    raise ValueError(
        f"{path}: not a Keras HDF5 weights file (no 'layer_names' attribute at its root or in "
        "'model_weights'); expected a Keras Applications ImageNet weight file such as "
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5."
    )


def _layer_values(group, layer, path):
    """Returns (variable, stored value) for each weight of `layer`, in Keras' legacy order.

    Raises ValueError naming `path` and `layer` if the file does not hold fitting weights.
    """
    if layer.name not in group:
        raise ValueError(f"{path}: layer {layer.name!r} of the model is missing from the file.")
    layer_group = group[layer.name]
    names = _strings(layer_group.attrs.get("weight_names", []))
    variables = layer.trainable_weights + layer.non_trainable_weights
    if len(names) != len(variables):
        raise ValueError(f"{path}: layer {layer.name!r} has {len(names)} weights in the file but "
                         f"{len(variables)} in the model.")
    pairs = []
    for index, (name, variable) in enumerate(zip(names, variables)):
        if name not in layer_group:
            raise ValueError(f"{path}: layer {layer.name!r} lists weight {name!r}, which the "
                             "file does not hold.")
        stored = layer_group[name]
        if tuple(stored.shape) != tuple(variable.shape):
            raise ValueError(
                f"{path}: layer {layer.name!r} weight {index} ({name}) has shape "
                f"{tuple(stored.shape)} in the file but {tuple(variable.shape)} in the model."
            )
        pairs.append((variable, stored[()]))
    return pairs


def _open(path):
    """Returns the HDF5 file `path` opened for reading; raises FileNotFoundError / ValueError
    naming `path`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}.")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path}: not an HDF5 file ({error}); expected a Keras Applications "
                         "ImageNet weight file (.h5).") from error


def stored_layer_names(path) -> list[str]:
    """Returns the names of the layers a Keras HDF5 weight file lists (`layer_names`), in order.

    Raises FileNotFoundError or ValueError naming `path` if it is not a Keras weight file.
    """
    with _open(path) as file:
        return _strings(_weights_group(file, os.fspath(path)).attrs["layer_names"])


def read_layer_weights(path, layer_name: str) -> list:
    """Returns the stored weights of layer `layer_name` of a Keras HDF5 weight file as NumPy
    arrays, in Keras' legacy order (e.g. [kernel, bias] for a Dense or Conv2D layer).

    Raises ValueError naming `path` and `layer_name` if the file lacks that layer or one of the
    weights it lists (FileNotFoundError if `path` is not a file).
    """
    path = os.fspath(path)
    with _open(path) as file:
        group = _weights_group(file, path)
        if layer_name not in group:
            raise ValueError(f"{path}: layer {layer_name!r} is missing from the file.")
        layer_group = group[layer_name]
        names = _strings(layer_group.attrs.get("weight_names", []))
        missing = [name for name in names if name not in layer_group]
        if missing:
            raise ValueError(f"{path}: layer {layer_name!r} lists weight {missing[0]!r}, which "
                             "the file does not hold.")
        return [layer_group[name][()] for name in names]


def load_weights_by_name(model: keras.Model, path) -> list[str]:
    """Sets every weighted layer of `model` from the same-named layer of a Keras HDF5 file.

    Args:
        model: `keras.Model` whose layers (`model.layers`, not nested) carry the names of the
            file's layers, e.g. a Keras Applications model, possibly cut at inner layers.
        path: str or path-like. A legacy Keras HDF5 weight file, as Keras Applications
            publishes. Layers of the file that `model` lacks (a classifier top, layers after a
            cut) are ignored.

    Returns:
        The names of the layers loaded: every layer of `model` that has weights, in order.
        Nothing is assigned unless all of them fit.

    Raises:
        FileNotFoundError: `path` is not a file.
        ValueError: naming `path` and the problem: not an HDF5 file, not a Keras weight file,
            or the first weighted layer of `model` that is missing from the file or whose
            weights differ in number or shape.
    """
    path = os.fspath(path)
    with _open(path) as file:
        group = _weights_group(file, path)
        layers = [layer for layer in model.layers if layer.weights]
        pairs = [pair for layer in layers for pair in _layer_values(group, layer, path)]
    for variable, value in pairs:
        variable.assign(value)
    return [layer.name for layer in layers]
