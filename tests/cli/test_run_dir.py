"""evaluate, export and save_weights of a training run: its experiment is read from its
config.json (the training's overrides are not repeated), and a model of another experiment or
class count, an override that contradicts the run, a checkpoint of another run than --model_dir, an
output that cannot be written, a split the dataset does not have or an evaluation flag that would
have no effect is refused in one line before any work, and no output folder is left behind."""

import json
import re
import shutil

import pytest

from deeplab_tf.cli import flags as cli_flags
from deeplab_tf.config import apply_overrides
from experiments import get_experiment
from tests.file_digest import tree_digest

TRAINED = "model.aspp_filters=16,model.low_level_filters=8,data.crop_size=64,train.steps=2"


def test_a_run_is_found_from_its_model_dir_its_checkpoints_folder_or_a_checkpoint_in_it(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "ckpt-3.index").write_text("")
    (run / "weights.npz").write_text("")
    (tmp_path / "ckpt-1.index").write_text("")  # a checkpoint outside a run's checkpoints/
    for path in (run, f"{run}/", run / "checkpoints", run / "checkpoints" / "ckpt-3"):
        assert cli_flags.run_config_path(str(path)) == str(run / "config.json"), path
    for path in (tmp_path, tmp_path / "ckpt-1", run / "weights.npz", tmp_path / "missing"):
        assert cli_flags.run_config_path(str(path)) is None, path


def test_a_checkpoint_read_with_a_run_as_model_dir_must_be_that_runs(tmp_path):
    for name in ("run", "other"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "checkpoints" / "ckpt-3.index").write_text("")
    (tmp_path / "weights.npz").write_text("")
    run, other = tmp_path / "run", tmp_path / "other"
    assert cli_flags.model_to_read(str(run), None) == str(run)
    assert cli_flags.model_to_read(None, str(other)) == str(other)
    assert cli_flags.model_to_read(f"{run}/", str(run / "checkpoints" / "ckpt-3")) == str(run / "checkpoints" / "ckpt-3")
    assert cli_flags.model_to_read(str(tmp_path), str(other)) == str(other)  # a --model_dir that is no run
    for checkpoint, where, advice in ((other / "checkpoints" / "ckpt-3", f"in the run {other}", f"--model_dir={other}"),
                                      (tmp_path / "weights.npz", "outside any training run",
                                       "a --model_dir that holds no training run")):
        with pytest.raises(ValueError) as error:
            cli_flags.model_to_read(str(run), str(checkpoint))
        assert str(error.value) == (
            f"--checkpoint={checkpoint} is {where}, not in the run --model_dir={run}: this command would file another "
            f"model's results as that run's. Give a checkpoint in {run / 'checkpoints'}, or {advice}")


def test_the_runs_experiment_takes_data_location_and_eval_overrides_and_refuses_the_rest(tmp_path):
    trained = apply_overrides(get_experiment("demo"), TRAINED)
    config = tmp_path / "config.json"
    config.write_text(trained.to_json())
    assert cli_flags.run_experiment(str(config), None, []) == trained
    assert cli_flags.run_experiment(str(config), "demo", [TRAINED]) == trained  # the training's overrides, repeated
    settable = ("data.data_dir=/elsewhere,data.tfds_data_dir=/tfds,data.eval_split=train,data.max_examples=1,"
                "eval.flip=true,eval.scales=(0.5,1.0),model.atrous_implementation=native,model.fused_batch_norm=false")
    assert cli_flags.run_experiment(str(config), None, [settable]) == apply_overrides(trained, settable)
    contradicting = "model.aspp_filters=64,train.steps=9,data.crop_size=32,eval.flip=true"
    with pytest.raises(ValueError) as error:
        cli_flags.run_experiment(str(config), None, [contradicting])
    assert str(error.value).startswith(
        f"--override contradicts the run's config {config}: model.aspp_filters=64 (the run has 16); "
        "data.crop_size=(32, 32) (the run has (64, 64)); train.steps=9 (the run has 2). Drop these overrides"
    )
    another = f"^{re.escape(str(tmp_path))} is a run of experiment 'demo' .*, not 'camvid_mnv2_v3plus'"
    with pytest.raises(ValueError, match=another):
        cli_flags.run_experiment(str(config), "camvid_mnv2_v3plus", [])
    config.write_text('{"model": {"no_such_field": 1}}')
    with pytest.raises(ValueError, match="does not hold a deeplab-tf experiment config"):
        cli_flags.run_experiment(str(config), None, [])


def test_evaluate_of_a_model_dir_needs_neither_experiment_nor_overrides(exported_demo, run_command, tmp_path):
    """The run's config.json is what is evaluated; the output starts with the evaluation, and off
    a terminal the progress is a few whole lines."""
    _, run, _ = exported_demo
    result = run_command("deeplab_tf.cli.evaluate", f"--model_dir={run}", f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert results["config"] == json.loads((run / "config.json").read_text())
    assert results["model"]["source"] == str(run / "checkpoints" / "ckpt-2")
    assert result.stdout.startswith(f"Evaluated {results['num_images']} images in ")
    progress = result.stderr.splitlines()
    assert 1 <= len(progress) <= 3 and all(re.fullmatch(r"\[[# ]{30}\] \d+/\d+  .* img/s  ETA \d+:\d\d", line)
                                           for line in progress), result.stderr[-3000:]


def test_export_of_a_model_dir_needs_neither_experiment_nor_overrides(exported_demo, run_command, tmp_path):
    _, run, _ = exported_demo
    result = run_command("export.export_saved_model", f"--checkpoint={run}", f"--export_dir={tmp_path / 'export'}")
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "export" / "assets.extra" / "dataset_info.json").read_text())
    assert (info["experiment"], info["checkpoint"]) == ("demo", str(run / "checkpoints" / "ckpt-2"))
    assert result.stderr == ""


def test_save_weights_of_a_model_dir_needs_neither_experiment_nor_overrides(exported_demo, run_command, tmp_path):
    _, run, _ = exported_demo
    output = tmp_path / "demo.npz"
    result = run_command("deeplab_tf.cli.save_weights", f"--checkpoint={run}", f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"Wrote {output} from {run / 'checkpoints' / 'ckpt-2'}: "), result.stdout
    assert output.stat().st_size > 0

REFUSED = [  # (command, arguments, the one error line after "error: "; RUN, EXPORT and TMP are paths)
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--checkpoint=TMP/a_file"],
     "--checkpoint=TMP/a_file is outside any training run, not in the run --model_dir=RUN: this command would"),
    ("deeplab_tf.cli.crf_search", ["--model_dir=RUN", "--checkpoint=TMP/a_file"],
     "--checkpoint=TMP/a_file is outside any training run, not in the run --model_dir=RUN: this command would"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--experiment=demo", "--override=model.aspp_filters=64"],
     "--override contradicts the run's config RUN/config.json: model.aspp_filters=64 (the run has 16). Drop"),
    ("export.export_saved_model", ["--checkpoint=RUN", "--export_dir=TMP/export", "--override=train.steps=9"],
     "--override contradicts the run's config RUN/config.json: train.steps=9 (the run has 2). Drop"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--experiment=camvid_mnv2_v3plus"],
     "RUN is a run of experiment 'demo' (RUN/config.json), not 'camvid_mnv2_v3plus': drop --experiment"),
    ("export.export_saved_model", ["--checkpoint=RUN/checkpoints/ckpt-2", "--experiment=voc_largefov",
                                   "--export_dir=TMP/export"],
     "RUN is a run of experiment 'demo' (RUN/config.json), not 'voc_largefov': drop --experiment"),
    ("deeplab_tf.cli.evaluate", ["--saved_model=EXPORT", "--experiment=camvid_mnv2_v3plus", "--output_dir=TMP/out"],
     "SavedModel EXPORT predicts 4 classes; camvid has 11 (Sky, Building,"),
    ("deeplab_tf.cli.evaluate", ["--saved_model=EXPORT", "--experiment=demo", "--output_stride=8",
                                 "--output_dir=TMP/out"],
     "flag --output_stride=8: needs a checkpoint: the SavedModel of --saved_model is fixed at its export's stride"),
    # A split the dataset does not have: named with those it has, and no output folder left behind.
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--split=nope", "--output_dir=TMP/out"],
     "synthetic_shapes has no split 'nope'; valid splits: ['train', 'val']"),
    ("deeplab_tf.cli.crf_search", ["--model_dir=RUN", "--split=nope", "--output=TMP/new/params.json"],
     "synthetic_shapes has no split 'nope'; valid splits: ['train', 'val']"),
    ("deeplab_tf.cli.write_images", ["--experiment=demo", "--split=nope", "--output=TMP/out"],
     "synthetic_shapes has no split 'nope'; valid splits: ['train', 'val']"),
    # An evaluation flag the run's settings (the experiment's eval, with the flags) would ignore.
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--crf_params=TMP/p.json", "--output_dir=TMP/out"],
     "flag --crf_params=TMP/p.json: the CRF is off (no --crf, and eval.crf of the experiment is false), so it "
     "would not be used: add --crf or drop --crf_params"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--nocrf", "--crf_backend=pydensecrf", "--output_dir=TMP/out"],
     "flag --crf_backend=pydensecrf: the CRF is off (no --crf, and eval.crf of the experiment is false), so it "
     "would not be used: add --crf or drop --crf_backend"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--tile_overlap=8", "--output_dir=TMP/out"],
     "flag --tile_overlap=8: tiled inference is off (eval.tile_size is 0,0), so there is no overlap: give "
     "--tile_size=HEIGHT,WIDTH too, or drop --tile_overlap"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--fusion=max", "--output_dir=TMP/out"],
     "flag --fusion=max: one pass is made (--scales=1.0, no --flip), so nothing is fused: give several --scales "
     "or --flip too, or drop --fusion"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--dataset=camvid", "--output_dir=TMP/out"],
     "--dataset=camvid has 11 classes (Sky, Building,"),
    ("deeplab_tf.cli.evaluate", ["--model_dir=RUN", "--output_dir=TMP/a_file/out"],
     "cannot create --output_dir TMP/a_file/out: Not a directory"),
    ("deeplab_tf.cli.crf_search", ["--model_dir=RUN", "--output=TMP/a_file/params.json"],
     "the folder of --output TMP/a_file is a file, not a folder"),
]


@pytest.mark.parametrize("command, arguments, error", REFUSED)
def test_refused_in_one_line_before_any_work(exported_demo, run_command, tmp_path, command, arguments, error):
    _, run, export = exported_demo
    (tmp_path / "a_file").write_text("")
    names = {"RUN": run, "EXPORT": export, "TMP": tmp_path}
    paths = lambda text: re.sub("RUN|EXPORT|TMP", lambda name: str(names[name[0]]), text)  # noqa: E731
    result = run_command(command, *map(paths, arguments))
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith(f"error: {paths(error)}"), result.stderr[-3000:]
    assert result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert result.stdout == ""
    assert [path.name for path in tmp_path.iterdir()] == ["a_file"]  # no output folder left behind


def test_evaluate_refuses_another_runs_checkpoint_into_a_run_leaving_it_as_it_was(exported_demo, run_command,
                                                                                 tmp_path):
    _, run, _ = exported_demo
    other = tmp_path / "other"
    shutil.copytree(run, other)
    before = tree_digest(run)
    result = run_command("deeplab_tf.cli.evaluate", f"--model_dir={run}",
                         f"--checkpoint={other / 'checkpoints' / 'ckpt-2'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr == (f"error: --checkpoint={other / 'checkpoints' / 'ckpt-2'} is in the run {other}, not in "
                             f"the run --model_dir={run}: this command would file another model's results as that "
                             f"run's. Give a checkpoint in {run / 'checkpoints'}, or --model_dir={other}\n")
    assert tree_digest(run) == before


@pytest.mark.parametrize("command, arguments", [
    ("deeplab_tf.cli.evaluate", ["--model_dir=PATH"]),
    ("export.export_tflite", ["--checkpoint=PATH", "--output=TMP/m.tflite", "--input_size=64x64"]),
])
def test_a_model_path_of_no_run_is_named_without_experiment(run_command, tmp_path, command, arguments):
    """Without --experiment the experiment is a run's config.json: a path that does not exist, or
    a folder that holds no run, is named as such (not as a missing --experiment)."""
    (tmp_path / "not_a_run").mkdir()
    for path, error in ((tmp_path / "missing", f"{tmp_path / 'missing'} does not exist: "),
                        (tmp_path / "not_a_run", f"{tmp_path / 'not_a_run'} is not part of a training run (no "
                                                 "config.json found for it): ")):
        result = run_command(command, *(a.replace("PATH", str(path)).replace("TMP", str(tmp_path)) for a in arguments))
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr.startswith(f"error: {error}") and result.stderr.count("\n") == 1, result.stderr[-3000:]
