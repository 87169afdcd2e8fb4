"""Flags shared by the command-line entry points, the experiment they resolve to, and how every
command starts and ends.

Importing this module (every entry point does, before TensorFlow) prepares the process
(`start_up`): TensorFlow's start-up logs silenced unless `--verbose` is on the command line, no
redrawn progress bars in a log file. `run(main)` turns a user's error into one `error:` line and
exit status 2 (`--debug` shows the traceback too).
"""

import errno
import fnmatch
import os
import re
import sys

from absl import flags

from deeplab_tf import onednn_ops
from deeplab_tf.config import SECTIONS, SPEED_CHOICE_FIELDS, Experiment, apply_overrides, from_file

flags.DEFINE_bool("verbose", False, "Show TensorFlow's start-up and library logs.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error, not only its `error:` line.")


def verbose_requested(argv: list[str]) -> bool:
    """Returns whether `argv` turns --verbose on, as absl reads it (False when its value is
    malformed: the full parse reports that)."""
    early = flags.FlagValues()
    flags.DEFINE_bool("verbose", False, "", flag_values=early)
    try:
        early(argv, known_only=True)
    except flags.Error:
        return False
    return early.verbose


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ logs limited to fatal ones (TF_CPP_MIN_LOG_LEVEL=3 unless
    the environment sets it) and file descriptor 2 pointed at /dev/null while it loads: the lines
    it logs when loading (oneDNN notice, CUDA stub) ignore TF_CPP_MIN_LOG_LEVEL."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # later lines, e.g. "failed call to cuInit"
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(devnull)


def start_up(argv: list[str]) -> None:
    """Prepares the process before TensorFlow and TFDS are imported: without --verbose in `argv`,
    TensorFlow is imported quietly (`import_tensorflow_quietly`); when stderr is not a terminal (a
    log file, a pipe), tqdm's progress bars (TFDS's, while it prepares a dataset) are turned off,
    as each would be one line redrawn thousands of times there."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm when it is imported
    if not verbose_requested(argv):
        import_tensorflow_quietly()


start_up(sys.argv)


def define_experiment_flags() -> None:
    """Defines --experiment and --override (repeatable, comma-separated `section.field=value`)."""
    flags.DEFINE_string(
        "experiment", None,
        "Name of a registered experiment (see experiments/). Unset, a command reading a training run "
        "(evaluate, export, crf_search) takes the run's from its config.json.",
    )
    flags.DEFINE_multi_string(
        "override", [], "Config overrides, e.g. --override=train.steps=200,data.crop_size=321"
    )


def given(name: str) -> bool:
    """Returns whether --`name` is on the command line (a flag left at its default is not)."""
    return bool(flags.FLAGS[name].present)


def refuse_flag_unless(name: str, condition, why: str) -> None:
    """Refuses --`name` on the command line unless `condition(flags.FLAGS)` holds: flags that
    contradict each other (two models to read) or one that would have no effect beside the
    others (read only with another flag). Checked as the flags are parsed (an absl validator),
    before any work: the command ends in one line, `error: flag --NAME=VALUE: WHY`, where `why`
    names the other flag and what to do."""
    flags.register_validator(name, lambda _: not given(name) or condition(flags.FLAGS), message=why)


def check_flag_effective(name: str, effective: bool, why: str) -> None:
    """Raises ValueError, worded as `refuse_flag_unless` words it, when --`name` is on the command
    line but not `effective`: for a flag whose effect is known only once the experiment is resolved
    (e.g. --crf_params while the CRF is off in the experiment and not turned on by --crf)."""
    if given(name) and not effective:
        raise ValueError(f"flag --{name}={flags.FLAGS[name].value}: {why}")


def define_tflite_flags(model_help: str) -> None:
    """Defines --tflite (a .tflite of export.export_tflite, described by `model_help`) and
    --tflite_threads, which is refused without --tflite (`refuse_flag_unless`)."""
    flags.DEFINE_string("tflite", None, model_help)
    flags.DEFINE_integer("tflite_threads", None, "Interpreter threads for --tflite; unset = LiteRT's default.",
                         lower_bound=1)
    refuse_flag_unless("tflite_threads", lambda values: values.tflite,
                       "sets the threads of the --tflite interpreter, and there is no --tflite: drop it or give "
                       "--tflite")


# What evaluating or exporting a training run may set differently from its config.json: where its
# data lives and which of it is read, the evaluation protocol, and speed choices that keep the
# weights. Any other override contradicts the run and is refused.
RUN_SETTABLE_FIELDS = (
    "data.data_dir", "data.tfds_data_dir", "data.eval_split", "data.max_examples", "eval.*", *SPEED_CHOICE_FIELDS,
)


def resolve_experiment(run: str | None = None) -> Experiment:
    """Returns the experiment to build, with every --override applied and validated.

    When `run` is (a path inside) a training run, its model dir, its checkpoints/ folder or a
    checkpoint prefix there (`--model_dir` of evaluate, `--checkpoint` of export), the experiment is
    the one its config.json records (`run_experiment`), so the training's overrides need not be
    repeated. Otherwise it is the experiment named by --experiment.

    Raises ValueError for a missing or unknown experiment (listing the known ones and the closest;
    a missing one with `run` naming it when it does not exist or has no config.json),
    an override of a field that does not exist, an experiment or override the run contradicts, or
    (`deeplab_tf.validation.validate`, once, before anything is built or read) every value of the
    resolved experiment outside its allowed values.
    """
    import experiments

    from deeplab_tf.validation import validate

    values = flags.FLAGS
    config_path = run_config_path(run) if run else None
    if config_path:
        experiment = run_experiment(config_path, values.experiment, values.override)
    elif values.experiment:
        experiment = apply_overrides(experiments.get_experiment(values.experiment), values.override)
    else:
        raise ValueError(f"{_why_no_experiment(run)}; known: {', '.join(experiments.list_experiments())}")
    validate(experiment)
    return experiment


def _why_no_experiment(run: str | None) -> str:
    """Returns why no experiment is known without --experiment: "--experiment is required" when
    `run` is None or the name of a model the zoo ships (of no run), else that `run` does not exist,
    or that it is not part of a training run (no config.json found for it)."""
    from deeplab_tf.pretrained import zoo
    from deeplab_tf.training.trainer import CONFIG_FILE

    if not run or zoo.is_shipped(run):
        return "--experiment is required"
    advice = "give a training run's model dir or checkpoint, or --experiment"
    if not (os.path.exists(run) or os.path.exists(run + ".index")):
        return f"{run} does not exist: {advice}"
    return f"{run} is not part of a training run (no {CONFIG_FILE} found for it): {advice}"


def run_config_path(path: str) -> str | None:
    """Returns the config.json of the training run `path` belongs to (`path` being its model dir,
    its checkpoints/ folder or a checkpoint prefix in that folder), or None when `path` is not
    part of a run (a published model, a weights file, a checkpoint elsewhere)."""
    from deeplab_tf.training.checkpoints import CHECKPOINT_SUBDIR
    from deeplab_tf.training.trainer import CONFIG_FILE

    path = os.path.normpath(path)
    if os.path.exists(path + ".index"):  # a checkpoint prefix: part of a run only in its checkpoints/
        path = os.path.dirname(path)
        if os.path.basename(path) != CHECKPOINT_SUBDIR:
            return None
    if os.path.basename(path) == CHECKPOINT_SUBDIR:
        path = os.path.dirname(path)
    config = os.path.join(path, CONFIG_FILE)
    return config if os.path.isfile(config) else None


def model_to_read(model_dir: str | None, checkpoint: str | None) -> str | None:
    """Returns the model a command that writes its results into --model_dir reads: `checkpoint`,
    else `model_dir` (its latest checkpoint).

    Raises ValueError when `model_dir` is a training run and `checkpoint` is not one of its
    checkpoints (it is another run's, or outside any run): that model's results would be written
    into `model_dir` as the run's own, over the run's.
    """
    from deeplab_tf.training.checkpoints import CHECKPOINT_SUBDIR

    run = model_dir and run_config_path(model_dir)
    if not (run and checkpoint):
        return checkpoint or model_dir
    owner = run_config_path(checkpoint)
    if owner and os.path.samefile(owner, run):
        return checkpoint
    where = f"in the run {os.path.dirname(owner)}" if owner else "outside any training run"
    advice = f"--model_dir={os.path.dirname(owner)}" if owner else "a --model_dir that holds no training run"
    raise ValueError(
        f"--checkpoint={checkpoint} is {where}, not in the run --model_dir={model_dir}: this command would "
        f"file another model's results as that run's. Give a checkpoint in "
        f"{os.path.join(model_dir, CHECKPOINT_SUBDIR)}, or {advice}"
    )


def run_experiment(config_path: str, name: str | None, overrides: list[str]) -> Experiment:
    """Returns the experiment a run recorded in `config_path`, with `overrides` applied.

    Raises ValueError when the file cannot be read as an experiment, when `name` (if given) is
    another experiment than the run's, or when an override changes a field outside
    `RUN_SETTABLE_FIELDS` (each such field named with the run's value and the override's).
    """
    recorded = from_file(config_path)
    if name and name != recorded.name:
        raise ValueError(
            f"{os.path.dirname(config_path)} is a run of experiment {recorded.name!r} ({config_path}), "
            f"not {name!r}: drop --experiment to use the run's config, or give a run of {name!r}"
        )
    experiment = apply_overrides(recorded, overrides)
    contradictions = [
        f"{key}={new!r} (the run has {old!r})"
        for key, old, new in changed_fields(recorded, experiment)
        if not any(fnmatch.fnmatchcase(key, pattern) for pattern in RUN_SETTABLE_FIELDS)
    ]
    if contradictions:
        raise ValueError(
            f"--override contradicts the run's config {config_path}: {'; '.join(contradictions)}. "
            f"Drop these overrides (the run's config is read); only {', '.join(RUN_SETTABLE_FIELDS)} may differ"
        )
    return experiment


def changed_fields(before: Experiment, after: Experiment) -> list[tuple[str, object, object]]:
    """Returns (`section.field`, value in `before`, value in `after`) for every field of the four
    sections whose value differs, in section and field order (values as `to_dict` gives them)."""
    old, new = before.to_dict(), after.to_dict()
    return [
        (f"{section}.{key}", old[section][key], new[section][key])
        for section in SECTIONS
        for key in new[section]
        if old[section][key] != new[section][key]
    ]


def check_output_dir(path: str, what: str) -> None:
    """Checks, before any work and creating nothing, that folder `path` can be made or written
    into: raises the OSError `make_output_dir` would (naming `what`, e.g. "--output_dir", and
    `path`) when it is a file, or the nearest folder above it that exists is a file or cannot be
    written. A command that checks its output this way makes it (`make_output_dir`) only once it
    has something to write, so a refused or failed run leaves no empty folder behind."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(f"{what} {path} is a file, not a folder")
    folder = os.path.abspath(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"cannot create {what} {path}: {os.strerror(errno.ENOTDIR)}")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write into {what} {path}: permission denied" if folder == os.path.abspath(path)
                              else f"cannot create {what} {path}: {os.strerror(errno.EACCES)}")


def make_output_dir(path: str, what: str) -> None:
    """Creates folder `path` (and its parents) if needed and checks it can be written, before any
    work. Raises OSError naming `what` (e.g. "--output_dir"), `path` and why when it is a file or
    cannot be created or written (`check_output_dir`)."""
    check_output_dir(path, what)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create {what} {path}: {error.strerror or error}") from None
    if not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write into {what} {path}: permission denied")


def check_not_replacing(paths: list[str], flag: str, overwrite: bool | None = None) -> None:
    """Returns, before any work, when writing the files `paths` (named by `flag`, or written into
    the folder it names) replaces none of them, or when `overwrite` (the command's --overwrite) is
    True. Raises FileExistsError naming the first that exists and how many others do, with the
    advice to choose another `flag`, or to pass --overwrite where the command has it (`overwrite`
    not None), else to remove the file."""
    existing = [] if overwrite else [path for path in paths if os.path.lexists(path)]
    if not existing:
        return
    more = f" (and {len(existing) - 1} more of the files to write)" if len(existing) > 1 else ""
    advice = (f"choose another {flag}, or pass --overwrite to replace the files this command writes"
              if overwrite is not None else f"remove it or choose another {flag}")
    raise FileExistsError(f"{existing[0]} exists{more} and is not replaced: {advice}")


def user_errors() -> tuple:
    """Returns the exception types that mean the user's input or environment is wrong (a name, a
    path, a value, a file that cannot be read or written, a diverged training): shown as one line."""
    import tensorflow as tf

    return (ValueError, OSError, FloatingPointError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
            tf.errors.PermissionDeniedError, tf.errors.ResourceExhaustedError)


_TF_CONTEXT = re.compile(r"^(Graph execution error:|Detected at node |<stack traces unavailable>|\s)")
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_TF_DATA_CONTEXT = re.compile(r"^Error in user-defined function passed to \S+ transformation with iterator: \S+: ")
_ASSERTION = re.compile(r"^assertion failed: \[(.*)\]$")


def error_text(error: BaseException) -> str:
    """Returns what `error` says went wrong. For a TensorFlow error, the lines of its message
    without the context TensorFlow wraps around it ("Graph execution error:", "Detected at node
    ...", stack lines, "{{function_node ...}}", tf.data's "Error in user-defined function passed
    to ... with iterator: ...:", "[[{{node ...}}]]", "[Op:...]") and without an Assert's
    "assertion failed: [...] [...]" brackets (its items joined by spaces), e.g. "Invalid PNG data,
    size 20000"; any other error's str(). An error without a message gives its type's name."""
    import tensorflow as tf

    if not isinstance(error, tf.errors.OpError):
        return str(error).strip() or type(error).__name__
    message = re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", error.message.split("\n\t [[")[0])
    lines = [line for line in message.splitlines() if line.strip() and not _TF_CONTEXT.match(line)]
    lines = [_TF_DATA_CONTEXT.sub("", _FUNCTION_NODE.sub("", line.strip())) for line in lines]
    return "\n".join(_ASSERTION.sub(lambda m: m[1].replace("] [", " "), line) for line in lines) or type(error).__name__


def error_line(error: BaseException) -> str:
    """Returns the `error: ...` text of `error` (`error_text`)."""
    return f"error: {error_text(error)}"


def exit_with_error(error: BaseException) -> None:
    """Prints `error` as its `error:` line on stderr (after the traceback with --debug) and exits
    with status 2."""
    if flags.FLAGS.is_parsed() and flags.FLAGS.debug:
        import traceback

        traceback.print_exception(error)
    print(error_line(error), file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """Parses `argv` into absl's flags; a wrong flag ends as one `error:` line, exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        exit_with_error(error)


def quiet_libraries() -> None:
    """Leaves only errors in TensorFlow's and absl's logs, and only deeplab-tf's own Python warnings
    (not --verbose)."""
    import warnings

    import tensorflow as tf
    from absl import logging

    logging.set_verbosity(logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"(deeplab_tf|experiments|export)(\.|$)")


def run(main) -> None:
    """Runs an absl `main`: stdout written line by line (training's progress lines reach a log file
    as they are printed, not in 8 KB blocks), library logs quiet unless --verbose, and a user error
    (`user_errors`) turned into one `error:` line on stderr and exit status 2."""
    from absl import app

    def guarded(argv):
        if hasattr(sys.stdout, "reconfigure"):  # pytest's capture may replace sys.stdout
            sys.stdout.reconfigure(line_buffering=True)
        if not flags.FLAGS.verbose:
            quiet_libraries()
        if onednn_ops.turn_on_where_off():  # set when deeplab_tf.cli was imported: say so, beside TF's notices
            print(onednn_ops.turn_on_where_off(), file=sys.stderr)
        try:
            return main(argv)
        except user_errors() as error:
            exit_with_error(error)

    app.run(guarded, flags_parser=parse_flags)
