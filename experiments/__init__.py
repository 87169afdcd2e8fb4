"""Named experiments. Every experiment module is imported here explicitly, so a name exists as
soon as `experiments` is imported (no registration by import side effect elsewhere)."""

from experiments.registry import get_experiment, list_experiments, register_experiment
from experiments import camvid, cityscapes, context_person_part, demo, official, voc  # noqa: F401  (registers them)

__all__ = ["get_experiment", "list_experiments", "register_experiment"]
