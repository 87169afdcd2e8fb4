"""A model's weights as one compact file: the form in which deeplab-tf ships trained models.

The file is a NumPy `.npz` archive (read with `allow_pickle=False`: it holds arrays only) that maps
each weight's Keras path (`layer_name/weight_name`, as training checkpoints key them) to its
values, in float16 or float32, plus a format marker. Keyed by path, one file loads into the same
architecture built at another output stride or atrous implementation. float16 halves the size of
a float32 checkpoint (2.6M parameters: 5.3 MB) and is restored into float32 variables.
"""

import os
import zipfile

import numpy as np

FORMAT_KEY = "__deeplab_tf_weights__"
FORMAT_VERSION = 1
SUFFIX = ".npz"
STORAGE_DTYPES = ("float16", "float32")


def is_weights_file(path: str) -> bool:
    """Returns True if `path` is a file named like a weights file (`*.npz`)."""
    return path.endswith(SUFFIX) and os.path.isfile(path)


def save_weights_file(model, path: str, dtype: str = "float16") -> str:
    """Writes every weight of `model` (trainable or not) to the new file `path` (`*.npz`), stored
    as `dtype` ("float16" or "float32"). Returns `path`.

    Raises FileExistsError if `path` exists (nothing is overwritten), ValueError for another
    suffix or dtype, or when a float16 value would overflow (|x| > 65504) or two weights share a
    path.
    """
    if not path.endswith(SUFFIX):
        raise ValueError(f"Weights file {path!r} must end in {SUFFIX}")
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"Weights dtype {dtype!r}: expected one of {STORAGE_DTYPES}")
    if os.path.exists(path):
        raise FileExistsError(f"{path} exists; remove it or choose another name (weights files are never overwritten)")
    arrays = {}
    for weight in model.weights:
        if weight.path in arrays:
            raise ValueError(f"Model {model.name!r} has two weights named {weight.path!r}")
        values = np.asarray(weight.numpy(), np.float64)
        if dtype == "float16" and np.abs(values).max(initial=0.0) > np.finfo(np.float16).max:
            raise ValueError(f"Weight {weight.path!r} of {model.name!r} exceeds float16's range (max |x| "
                             f"{np.abs(values).max():.4g}); store it as float32")
        arrays[weight.path] = values.astype(dtype)
    arrays[FORMAT_KEY] = np.array(FORMAT_VERSION)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "wb") as f:
        np.savez(f, **arrays)
    os.replace(partial, path)
    return path


def load_weights_file(model, path: str) -> int:
    """Sets every weight of `model` from the weights file `path` (cast to each variable's dtype).
    Returns the number of weights set.

    Raises ValueError, one line naming the file, when it is not a weights file of this format, when
    a weight of `model` is missing from it or it holds a weight `model` does not have (another
    architecture or experiment), or when a shape differs (naming the weight and both shapes).
    Nothing is assigned unless every weight fits.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = {name: archive[name] for name in archive.files}
    except (ValueError, EOFError, zipfile.BadZipFile):  # not an .npz of arrays (numpy's message: unpickle it)
        stored = {}
    if stored.pop(FORMAT_KEY, None) != FORMAT_VERSION:
        raise ValueError(f"{path} is not a deeplab-tf weights file (format {FORMAT_VERSION}; written by "
                         f"deeplab_tf.models.weights_file.save_weights_file)")
    wanted = {weight.path: weight for weight in model.weights}
    missing = sorted(set(wanted) - set(stored))
    unused = sorted(set(stored) - set(wanted))
    if missing or unused:
        raise ValueError(
            f"{path} does not hold the weights of the model {model.name!r} built from this experiment "
            f"(another experiment or override?): {len(missing)} missing (first: {missing[:1]}), "
            f"{len(unused)} not in the model (first: {unused[:1]})")
    for name, weight in wanted.items():
        if tuple(stored[name].shape) != tuple(weight.shape):
            raise ValueError(f"{path}: weight {name!r} has shape {tuple(stored[name].shape)}, the model's is "
                             f"{tuple(weight.shape)}")
    for name, weight in wanted.items():
        weight.assign(stored[name].astype(weight.dtype))
    return len(wanted)
