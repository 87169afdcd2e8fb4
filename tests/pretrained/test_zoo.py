"""The pretrained-model registry: every entry builds from a registered experiment (when that
experiment exists), the official files here match the published sha256, lookups fail clearly,
and the listing command prints every entry."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

import experiments
from deeplab_tf.pretrained.zoo import PRETRAINED_MODELS, check_files, file_sha256, get_pretrained, is_shipped

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFICIAL = os.path.join(REPO, "..", "shared", "data", "official_deeplab")
LOCAL_COPIES = {"deeplabv3_mnv2_pascal_trainval_tfjs": "tfjs_mnv2_voc_trainval",
                "deeplabv3_mnv2_dm05_257_tflite": "tflite_mnv2_dm05_voc"}


@pytest.mark.parametrize("name", sorted(PRETRAINED_MODELS))
def test_entries_are_complete(name):
    model = get_pretrained(name)
    assert model.files and model.protocol
    assert model.url.startswith("http") or (is_shipped(name) and model.url.startswith("weights/"))
    assert 0 <= model.miou < 100 and (model.miou or "not published" in model.protocol)
    if model.experiment in experiments.list_experiments():
        experiments.get_experiment(model.experiment)


@pytest.mark.parametrize("name, folder", sorted(LOCAL_COPIES.items()))
def test_official_files_match_the_published_sha256(name, folder):
    path = os.path.join(OFFICIAL, folder)
    if not os.path.isdir(path):
        pytest.skip(f"official models not found at {os.path.abspath(OFFICIAL)}")
    model = get_pretrained(name)
    assert set(model.sha256) == set(model.files)
    assert check_files(model, path) == []
    # The registry's sums are the README's (an independent record of the same files).
    readme = open(os.path.join(OFFICIAL, "README.md")).read()
    for file_name, sha in model.sha256.items():
        assert f"{sha}  {folder}/{file_name}" in readme
        assert file_sha256(os.path.join(path, file_name)) == sha


def test_check_files_names_missing_and_altered_files(tmp_path):
    model = get_pretrained("deeplabv3_mnv2_dm05_257_tflite")
    assert check_files(model, str(tmp_path)) == [f"{tmp_path}/deeplabv3_257_mv_gpu.tflite is missing"]
    (tmp_path / "deeplabv3_257_mv_gpu.tflite").write_bytes(b"not the model")
    (problem,) = check_files(model, str(tmp_path))
    assert "has sha256" in problem and model.sha256["deeplabv3_257_mv_gpu.tflite"] in problem


def test_check_files_of_a_file_checks_that_file_not_the_published_name_beside_it(tmp_path):
    model = get_pretrained("deeplabv3_mnv2_dm05_257_tflite")
    (tmp_path / "deeplabv3_257_mv_gpu.tflite").write_bytes(b"the published name, other bytes")
    given = tmp_path / "renamed.tflite"
    given.write_bytes(b"the file given")
    expected = hashlib.sha256(b"the file given").hexdigest()
    assert check_files(model, str(given)) == [
        f"{given} has sha256 {expected}, published {model.sha256['deeplabv3_257_mv_gpu.tflite']}"]
    assert check_files(model, str(tmp_path / "missing.tflite")) == [f"{tmp_path / 'missing.tflite'} does not exist"]


def test_check_files_of_a_renamed_official_file_passes(tmp_path):
    official = os.path.join(OFFICIAL, LOCAL_COPIES["deeplabv3_mnv2_dm05_257_tflite"], "deeplabv3_257_mv_gpu.tflite")
    if not os.path.isfile(official):
        pytest.skip(f"official models not found at {os.path.abspath(OFFICIAL)}")
    shutil.copy(official, tmp_path / "model.tflite")
    assert check_files(get_pretrained("deeplabv3_mnv2_dm05_257_tflite"), str(tmp_path / "model.tflite")) == []


def test_check_files_of_one_file_of_a_model_of_several_is_refused(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'model.json'} is a file, but "
                                         "deeplabv3_mnv2_pascal_trainval_tfjs has 4 files"):
        check_files(get_pretrained("deeplabv3_mnv2_pascal_trainval_tfjs"), str(tmp_path / "model.json"))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Did you mean 'deeplabv3_pascal_train_aug'"):
        get_pretrained("deeplabv3_pascal_trainaug")


def test_listing_command_prints_every_entry():
    result = subprocess.run([sys.executable, "-m", "deeplab_tf.cli.zoo"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    for model in PRETRAINED_MODELS.values():
        assert model.name in result.stdout and model.url in result.stdout and model.experiment in result.stdout
