"""The command-line tools start quietly, and fail with one clear line (exit status 2) on bad
input; `--verbose` brings TensorFlow's logs back, `--debug` the traceback."""

import pkgutil
import re

import pytest

import deeplab_tf.cli

# Every `python -m` command: the modules of deeplab_tf.cli but the shared flags, and the exporter.
COMMANDS = [f"deeplab_tf.cli.{m.name}" for m in pkgutil.iter_modules(deeplab_tf.cli.__path__) if m.name != "flags"]
COMMANDS += ["export.export_saved_model"]
TINY = ("model.backbone_alpha=0.35,model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8,"
        "data.crop_size=64,data.max_examples=4,train.batch_size=2")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment=camvid_mnv2", "--model_dir=MODEL"], "Did you mean 'camvid_mnv2_v3plus'"),
        (["--experiment=demo", "--model_dir=MODEL", "--override=train.stepz=3"], "Did you mean train.steps"),
        (["--experiment=camvid_mnv2_v3plus", "--model_dir=MODEL", "--override=data.data_dir=/nonexistent/camvid"],
         "/nonexistent/camvid"),
        # Data the experiment needs is missing: say which files and where to put them, before
        # building the model.
        (["--experiment=voc_aspp_l", "--model_dir=MODEL"], "VOCtrainval_11-May-2012.tar"),
        (["--experiment=voc_r101_v2_msc_coco", "--model_dir=MODEL"], "train.init_checkpoint"),
    ],
)
def test_train_refuses_bad_input_clearly(run_command, tmp_path, args, message):
    result = run_command("deeplab_tf.cli.train", *[a.replace("MODEL", str(tmp_path / "m")) for a in args])
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_label_value_is_reported_with_the_file(run_command, tmp_path):
    """A label value outside the classes fails the dataset preparation with one line naming the file."""
    import cv2
    import numpy as np

    for folder in ("train", "trainannot"):
        (tmp_path / folder).mkdir()
    for name, value in (("a", 40), ("b", 3)):
        cv2.imwrite(str(tmp_path / "train" / f"{name}.png"), np.zeros((40, 40, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "trainannot" / f"{name}.png"), np.full((40, 40), value, np.uint8))
    (tmp_path / "train.txt").write_text("train/a.png trainannot/a.png\n")
    (tmp_path / "val.txt").write_text("train/b.png trainannot/b.png\n")
    result = run_command(
        "deeplab_tf.cli.train", "--experiment=camvid_mnv2_v3plus", f"--model_dir={tmp_path / 'm'}",
        f"--override=data.data_dir={tmp_path},model.backbone_alpha=0.35,data.crop_size=32,train.batch_size=1",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "trainannot/a.png: label values [40] are not classes" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_values_are_refused_at_once_before_anything_is_built(run_command, tmp_path):
    """`resolve_experiment` validates the experiment: one error, the allowed values, exit status 2,
    and nothing written to the model dir."""
    model_dir = tmp_path / "m"
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={model_dir}",
                         "--override=train.steps=-5")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: Invalid experiment 'demo': train.steps=-5: the number of training steps must be at "
                      "least 1; allowed: integers >= 1"]
    assert "Traceback" not in result.stderr
    assert not model_dir.exists()


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_starts_quietly_and_refuses_a_wrong_flag_in_one_line(run_command, module):
    """Nothing of TensorFlow's start-up (it is imported before the flags are parsed), and absl's
    flag errors as one `error:` line with exit status 2, not its FATAL text and status 1."""
    result = run_command(module, "--no_such_flag=1")
    assert (result.returncode, result.stderr) == (2, "error: Unknown command line flag 'no_such_flag'\n")


@pytest.mark.parametrize("verbose", [False, True])
def test_output_starts_with_what_was_asked_and_verbose_brings_back_the_logs(run_command, verbose):
    result = run_command("deeplab_tf.cli.experiments", "--noparams", "demo", *(["--verbose"] if verbose else []))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].split()[:3] == ["name", "model", "dataset"]
    assert result.stdout.splitlines()[1].startswith("demo ")
    assert bool(result.stderr) == verbose, result.stderr[-2000:]  # TensorFlow's start-up logs


def test_debug_shows_the_traceback_before_the_error_line(run_command, tmp_path):
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={tmp_path / 'm'}",
                         "--override=train.steps=-5", "--debug")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "ValueError: Invalid experiment 'demo'" in result.stderr
    assert lines[-1].startswith("error: Invalid experiment 'demo': train.steps=-5")


def test_a_training_that_diverges_ends_in_one_error_line(run_command, tmp_path):
    """A NaN loss stops training (trainer.train raises FloatingPointError): one `error:` line
    naming the step, exit status 2, the progress so far on stdout."""
    result = run_command("deeplab_tf.cli.train", "--experiment=demo", f"--model_dir={tmp_path / 'm'}",
                         f"--override={TINY},train.steps=3,train.base_learning_rate=1e30")
    assert result.returncode == 2, result.stderr[-2000:]
    stopped = r"error: (Loss is -?(nan|inf)|Batch norm moving statistics are not finite) at step \d+; stopping\..*\n"
    assert re.fullmatch(stopped, result.stderr), result.stderr
    assert result.stdout.startswith("Training demo: steps 0->3")


def test_error_text_drops_the_context_tensorflow_wraps_around_graph_errors():
    """Errors raised inside a tf.function (as a SavedModel signature raises them) start with
    "Graph execution error:" and a node name; the text is the line that says what is wrong."""
    import tensorflow as tf

    from deeplab_tf.cli.flags import error_line, error_text

    @tf.function
    def check(x):
        tf.debugging.Assert(x > 0, ["value must be positive: got", x])
        return x

    @tf.function
    def decode(data):
        return tf.io.decode_png(data)

    cases = [(lambda: check(tf.constant(-3)), "value must be positive: got -3"),
             (lambda: decode(tf.constant(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)), None),
             (lambda: tf.reshape(tf.zeros(6), (4, 4)), "Input to reshape is a tensor with 6 values, but the "
                                                       "requested shape has 16")]
    for call, expected in cases:
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            call()
        text = error_text(caught.value)
        assert "Graph execution error" not in text and "Detected at node" not in text and "[Op:" not in text, text
        assert "[[" not in text and text.strip() and "\n" not in text, text
        assert text == (expected or text) and error_line(caught.value) == f"error: {text}"
    assert error_text(ValueError("two\nlines")) == "two\nlines"


def test_error_text_drops_the_tf_data_iterator_context():
    """An Assert inside a tf.data map (the CamVid folder's label checks) reaches the trainer as
    "Error in user-defined function passed to ... with iterator: ...: assertion failed: [...]"."""
    import tensorflow as tf

    from deeplab_tf.cli.flags import error_text

    def check(x):
        with tf.control_dependencies([tf.debugging.Assert(x < 2, ["label file L has value", x])]):
            return tf.identity(x)

    dataset = tf.data.Dataset.range(5).map(check, num_parallel_calls=2).prefetch(1)
    next_in_graph = tf.function(lambda iterator: next(iterator))  # as the trainer's step reads its batches
    for read in (list, lambda d: [next_in_graph(iterator) for iterator in [iter(d)] for _ in range(5)]):
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            read(dataset)
        assert error_text(caught.value) == "label file L has value 2"


def test_check_not_replacing_names_the_first_existing_file_and_what_to_do(tmp_path):
    """One check for every command's output files: with an --overwrite flag (predict,
    write_images) the advice names it, without one (crf_search) it says to remove the file."""
    from deeplab_tf.cli.flags import check_not_replacing

    new, first, second = (str(tmp_path / name) for name in ("new", "first", "second"))
    for path in (first, second):
        open(path, "w").close()
    check_not_replacing([new], "--output")
    check_not_replacing([new, first, second], "--output", overwrite=True)
    with pytest.raises(FileExistsError) as error:
        check_not_replacing([first], "--output")
    assert str(error.value) == f"{first} exists and is not replaced: remove it or choose another --output"
    with pytest.raises(FileExistsError) as error:
        check_not_replacing([new, first, second], "--output", overwrite=False)
    assert str(error.value) == (f"{first} exists (and 1 more of the files to write) and is not replaced: choose "
                                "another --output, or pass --overwrite to replace the files this command writes")


# (command, arguments, the one error line after "error: "; TMP is the test's folder): flags that
# contradict each other, or one that would have no effect beside the others, refused as they are
# parsed (`flags.refuse_flag_unless`), naming both, before anything is read or made.
CONTRADICTIONS = [
    ("deeplab_tf.cli.evaluate", ["--checkpoint=TMP/ckpt", "--saved_model=TMP/export", "--output_dir=TMP/out"],
     "flag --checkpoint=TMP/ckpt: --saved_model is the model evaluated, so the checkpoint would not be read: give "
     "one of the two (--model_dir=RUN takes the experiment of a training run)"),
    ("deeplab_tf.cli.evaluate", ["--checkpoint=TMP/ckpt", "--tflite=TMP/m.tflite", "--output_dir=TMP/out"],
     "flag --checkpoint=TMP/ckpt: --tflite is the model evaluated, so the checkpoint would not be read: give "
     "one of the two (--model_dir=RUN takes the experiment of a training run)"),
    ("deeplab_tf.cli.evaluate", ["--saved_model=TMP/export", "--tflite=TMP/m.tflite", "--output_dir=TMP/out"],
     "flag --tflite=TMP/m.tflite: give --saved_model or --tflite, not both: one model is evaluated"),
    ("deeplab_tf.cli.evaluate", ["--saved_model=TMP/export", "--output_stride=8", "--output_dir=TMP/out"],
     "flag --output_stride=8: needs a checkpoint: the SavedModel of --saved_model is fixed at its export's stride"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=TMP/run", "--tflite_threads=2"],
     "flag --tflite_threads=2: sets the threads of the --tflite interpreter, and there is no --tflite: drop it or "
     "give --tflite"),
    ("deeplab_tf.cli.predict", ["--saved_model=TMP/export", "--tflite_threads=2", "--input=TMP/in", "--output=TMP/out"],
     "flag --tflite_threads=2: sets the threads of the --tflite interpreter, and there is no --tflite: drop it or "
     "give --tflite"),
    ("export.export_saved_model", ["--checkpoint=TMP/run", "--export_dir=TMP/export", "--crf_params=TMP/p.json"],
     "flag --crf_params=TMP/p.json: the CRF parameters are read only with --crf, and there is no --crf: add --crf "
     "or drop --crf_params"),
    ("export.export_saved_model", ["--checkpoint=TMP/run", "--export_dir=TMP/export", "--fusion=max"],
     "flag --fusion=max: one pass is exported (one --scales, no --flip), so nothing is fused: give several "
     "--scales or --flip too, or drop --fusion"),
    ("export.export_tflite", ["--checkpoint=TMP/run", "--output=TMP/m.tflite", "--input_size=64x64",
                              "--calibration_images=10"],
     "flag --calibration_images=10: only --precision=int8 is calibrated: add --precision=int8 or drop "
     "--calibration_images"),
    ("export.export_tflite", ["--checkpoint=TMP/run", "--output=TMP/m.tflite", "--input_size=64x64",
                              "--precision=float16", "--noper_channel"],
     "flag --per_channel=False: only --precision=int8 or dynamic_range quantises kernels: give one of them or "
     "drop --[no]per_channel"),
    ("deeplab_tf.cli.train", ["--experiment=demo", "--model_dir=TMP/run", "--tpu=grpc://10.0.0.2:8470"],
     "flag --tpu=grpc://10.0.0.2:8470: a TPU is used only with --strategy=tpu: add --strategy=tpu or drop --tpu"),
    ("deeplab_tf.cli.zoo", ["--path=TMP/files"],
     "flag --path=TMP/files: the files are checked only with --check=NAME: add it or drop --path"),
    ("deeplab_tf.cli.zoo", ["--check=camvid_mnv2_voc_transfer", "voc_*"],
     "--check=camvid_mnv2_voc_transfer checks one model, and lists none: drop 'voc_*'"),
]


@pytest.mark.parametrize("module, arguments, error", CONTRADICTIONS, ids=lambda value: str(value)[:40])
def test_contradictory_or_ineffective_flags_are_refused_naming_both(run_command, tmp_path, module, arguments, error):
    result = run_command(module, *[argument.replace("TMP", str(tmp_path)) for argument in arguments])
    assert (result.returncode, result.stdout) == (2, ""), result.stderr[-2000:]
    assert result.stderr == f"error: {error.replace('TMP', str(tmp_path))}\n"
    assert not list(tmp_path.iterdir())


def test_evaluate_takes_output_stride_0_beside_a_saved_model(run_command, tmp_path):
    """0 is no stride to rebuild at (it sets eval.output_stride to the training stride, as
    bench/tflite_precisions.py does): not refused, unlike another stride."""
    result = run_command("deeplab_tf.cli.evaluate", "--experiment=demo", f"--saved_model={tmp_path / 'export'}",
                         "--output_stride=0", f"--output_dir={tmp_path / 'out'}")
    assert (result.returncode, result.stderr) == (
        2, f"error: SavedModel file does not exist at: {tmp_path / 'export'}/{{saved_model.pbtxt|saved_model.pb}}\n")


def test_check_output_dir_names_what_makes_the_folder_impossible_and_creates_nothing(tmp_path):
    from deeplab_tf.cli.flags import check_output_dir

    (tmp_path / "a_file").write_text("")
    check_output_dir(str(tmp_path / "new" / "sub"), "--output")
    check_output_dir(str(tmp_path), "--output")
    with pytest.raises(NotADirectoryError, match=f"^--output {tmp_path / 'a_file'} is a file, not a folder$"):
        check_output_dir(str(tmp_path / "a_file"), "--output")
    with pytest.raises(NotADirectoryError, match=f"^cannot create --output {tmp_path / 'a_file' / 'x'}: Not a dir"):
        check_output_dir(str(tmp_path / "a_file" / "x"), "--output")
    assert [path.name for path in tmp_path.iterdir()] == ["a_file"]
