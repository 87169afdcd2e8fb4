"""Registry of named experiments: `register_experiment`, `get_experiment`, `list_experiments`."""

import dataclasses
import difflib
import fnmatch
from typing import Callable

from deeplab_tf.config import Experiment

_FACTORIES: dict[str, Callable[[], Experiment]] = {}


def register_experiment(name: str):
    """Returns a decorator that registers a zero-argument factory returning an `Experiment`.

    The experiment's `name` is set to the registered name; registering a name twice raises.
    """

    def decorator(factory: Callable[[], Experiment]) -> Callable[[], Experiment]:
        if name in _FACTORIES:
            raise ValueError(f"Experiment {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def get_experiment(name: str) -> Experiment:
    """Returns the registered experiment `name`.

    Raises ValueError listing every known name and the closest match when `name` is unknown.
    """
    if name not in _FACTORIES:
        close = difflib.get_close_matches(name, _FACTORIES, n=1, cutoff=0.4)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown experiment {name!r}.{hint} Known experiments: {', '.join(sorted(_FACTORIES))}"
        )
    return dataclasses.replace(_FACTORIES[name](), name=name)


def list_experiments(pattern: str = "*") -> list[str]:
    """Returns the sorted names of registered experiments matching the glob `pattern`."""
    return sorted(n for n in _FACTORIES if fnmatch.fnmatchcase(n, pattern))

