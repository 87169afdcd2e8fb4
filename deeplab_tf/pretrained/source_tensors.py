"""The tensors read from one pretrained-weights file, by name, and the errors of reading them.

Every reader in `deeplab_tf.pretrained` (TF.js graph model, TFLite flatbuffer, TF1 checkpoint,
frozen GraphDef) returns a `SourceTensors`; code that maps them onto a model fetches each tensor
with `SourceTensors.tensor(name, shape)`, which fails in one line naming the tensor, the shapes
and the file.
"""

import difflib
from collections.abc import Iterator, Mapping

import numpy as np


class SourceTensorError(Exception):
    """Base of the errors raised while reading pretrained weights; the message is one line."""


class SourceFileError(SourceTensorError, ValueError):
    """A weights file is malformed or uses a feature that is not supported (names the file)."""


class MissingTensorError(SourceTensorError, KeyError):
    """A tensor asked for is not in the file (names the tensor, the file and the closest names)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class TensorShapeError(SourceTensorError, ValueError):
    """A tensor has another shape than the one asked for (names tensor, both shapes and file)."""


class SourceTensors(Mapping):
    """Read-only mapping from tensor name to `np.ndarray` (arrays are not writeable), with the path
    of the file they were read from, for error messages.

    Args:
        `tensors`: mapping of name -> array-like. Copied into a new dict; arrays are viewed
            read-only (the caller's arrays keep their own flags).
        `path`: str. The file (or directory) the tensors come from.
    """

    def __init__(self, tensors: Mapping[str, np.ndarray], path: str):
        self.path = str(path)
        self._tensors = {name: _read_only(value) for name, value in tensors.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        """Returns the tensor called `name`; raises `MissingTensorError` if there is none."""
        try:
            return self._tensors[name]
        except KeyError:
            raise MissingTensorError(self._missing_message(name)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"SourceTensors({len(self)} tensors from {self.path})"

    def tensor(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Returns the tensor called `name` (read-only `np.ndarray`, its dtype as stored).

        Raises `MissingTensorError` if there is no such tensor, and `TensorShapeError` if `shape`
        is given and differs from the tensor's shape."""
        value = self[name]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise TensorShapeError(
                f"tensor {name!r} has shape {tuple(value.shape)}, expected {tuple(shape)}, in {self.path}"
            )
        return value

    def _missing_message(self, name: str) -> str:
        closest = difflib.get_close_matches(name, list(self._tensors), n=3, cutoff=0.5)
        hint = f"; closest names: {', '.join(repr(c) for c in closest)}" if closest else ""
        return f"no tensor {name!r} in {self.path} ({len(self)} tensors){hint}"


def _read_only(value) -> np.ndarray:
    view = np.asarray(value).view()
    view.flags.writeable = False
    return view
