"""Flags shared by the command-line entry points, and the experiment they resolve to."""

from absl import flags

from deeplab_tf.config import Experiment, apply_overrides


def define_experiment_flags() -> None:
    """Defines --experiment and --override (repeatable, comma-separated `section.field=value`)."""
    flags.DEFINE_string("experiment", None, "Name of a registered experiment (see experiments/).")
    flags.DEFINE_multi_string(
        "override", [], "Config overrides, e.g. --override=train.steps=200,data.crop_size=321"
    )


def resolve_experiment() -> Experiment:
    """Returns the experiment named by --experiment with every --override applied.

    Raises ValueError for an unknown experiment (listing the known ones and the closest), an
    override of a field that does not exist, or (`deeplab_tf.validation.validate`, once, before
    anything is built or read) every value of the resolved experiment outside its allowed values.
    """
    import experiments

    from deeplab_tf.validation import validate

    values = flags.FLAGS
    if not values.experiment:
        raise ValueError(f"--experiment is required; known: {', '.join(experiments.list_experiments())}")
    experiment = apply_overrides(experiments.get_experiment(values.experiment), values.override)
    validate(experiment)
    return experiment


# Errors that mean the user's input is wrong (a name, a path, a value): shown without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def run(main) -> None:
    """Runs an absl `main`, turning user errors into one clear line on stderr and exit status 2."""
    import sys

    import tensorflow as tf
    from absl import app

    def guarded(argv):
        from absl import logging

        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the progress output
        try:
            return main(argv)
        except USER_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except tf.errors.InvalidArgumentError as error:
            # Raised by the data checks inside tf.data (they name the file and the problem).
            message = error.message.split("\n\t [[")[0].strip()
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
