"""Argument checks shared by the backbone builders: multi-grid and weight files."""

import os


def check_multi_grid(multi_grid, units, where):
    """Returns `multi_grid` as a tuple of `units` positive ints; raises ValueError otherwise.

    Args:
        multi_grid: the value to check, e.g. (1, 2, 4).
        units: int. How many ints it must hold.
        where: str. What each int scales, for the message, e.g.
            "unit of the last block of 'resnet50'".
    """
    if (not isinstance(multi_grid, (tuple, list)) or len(multi_grid) != units
            or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0
                       for m in multi_grid)):
        raise ValueError(f"`multi_grid` must be {units} positive ints, one per {where}. "
                         f"Received: multi_grid={multi_grid!r}")
    return tuple(multi_grid)


def check_weights_file(name, weights, expected, suffix=""):
    """Returns `weights` as a local path, or `None` for `None` (random init).

    Args:
        name: str. The backbone, for the message.
        weights: `None`, "imagenet" or a path (str or path-like).
        expected: str. Says which file to pass instead of a refused one.
        suffix: str. How the file name must end, e.g. ".weights.h5". Defaults to "" (any).

    Raises:
        ValueError: `weights` is "imagenet" (a download, which is not possible here) or does
            not end with `suffix`; the message is `expected` and the value received.
        FileNotFoundError: naming `name` and the path, if it is not a file.
    """
    if weights is None:
        return None
    path = os.fspath(weights)
    if weights == "imagenet" or not path.endswith(suffix):
        raise ValueError(f"{expected} Received: weights={path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file for backbone {name!r} not found: {path!r}.")
    return path
