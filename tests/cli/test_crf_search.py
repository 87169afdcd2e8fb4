"""crf_search's output: an existing file (the user's, an earlier search's) is never replaced, and
an output that cannot be written is refused in one line before the search."""

import shutil

from tests.file_digest import tree_digest


def test_an_existing_output_is_refused_before_the_search_and_left_as_it_was(exported_demo, run_command, tmp_path):
    _, trained, _ = exported_demo
    files = tmp_path / "files"
    run = files / "run"
    shutil.copytree(trained, run)
    (run / "crf_params.json").write_text('{"params": "an earlier search of 100 images"}')
    (files / "mine.json").write_text('{"mine": 1}')
    before = tree_digest(files)
    for flags, existing in (((), run / "crf_params.json"), ((f"--output={files / 'mine.json'}",), files / "mine.json")):
        result = run_command("deeplab_tf.cli.crf_search", f"--model_dir={run}", "--num_images=1", "--processes=1",
                             *flags)
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr == f"error: {existing} exists and is not replaced: remove it or choose another --output\n"
        assert result.stdout == ""  # no "Searching CRF parameters ..."
    assert tree_digest(files) == before
