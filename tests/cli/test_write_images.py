"""write_images: the first images of a split as 00000.png, ...; a file of those names that exists in
--output is kept (exit status 2, one line naming it) unless --overwrite, and an --output that is a
file is refused in one line."""

import pytest
import tensorflow as tf

from deeplab_tf.cli.write_images import write_images
from deeplab_tf.data import get_source
from experiments import get_experiment
from tests.file_digest import tree_digest

WRITE_IMAGES = "deeplab_tf.cli.write_images"


def test_an_existing_file_is_kept_and_named(tmp_path, run_command):
    """The report's case: the user's 00000.png in --output was replaced by a generated image."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "00000.png").write_text("my holiday photo")
    before = tree_digest(out)
    result = run_command(WRITE_IMAGES, "--experiment=demo", "--count=2", f"--output={out}")
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {out / '00000.png'} exists and is not replaced: choose another --output, "
                      "or pass --overwrite to replace the files this command writes"], result.stderr
    assert tree_digest(out) == before


def test_overwrite_replaces_only_the_files_written(tmp_path):
    source = get_source(get_experiment("demo").data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "00000.png").write_text("stale")
    (out / "00002.png").write_text("mine")
    assert write_images(source, "val", 2, str(out), overwrite=True) == [str(out / "00000.png"), str(out / "00001.png")]
    expected = next(iter(source.examples("val")))["image"].numpy()
    assert (tf.io.decode_png((out / "00000.png").read_bytes()).numpy() == expected).all()
    assert (out / "00002.png").read_text() == "mine"


def test_an_output_that_is_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(OSError, match=f"^--output {tmp_path / 'afile'} is a file, not a folder$"):
        write_images(get_source(get_experiment("demo").data), "val", 1, str(tmp_path / "afile"))
    assert (tmp_path / "afile").read_text() == "mine"
