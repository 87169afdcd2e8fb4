"""The coarse-to-fine CRF parameter search: its grids, its core on a tiny synthetic case, and
`python -m deeplab_tf.cli.crf_search` on a tiny model."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deeplab_tf.crf import DenseCRFParams, load_params, refine
from deeplab_tf.evaluation.crf_search import coarse_grid, fine_grid, search_crf_params
from deeplab_tf.crf.synthetic_unary import blobby_probabilities
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics


def test_coarse_grid_is_the_papers():
    grid = coarse_grid()
    assert len(grid) == len(set(grid)) == 4 * 8 * 4
    assert sorted({p.w1 for p in grid}) == [3, 4, 5, 6]
    assert sorted({p.sigma_alpha for p in grid}) == list(range(30, 101, 10))
    assert sorted({p.sigma_beta for p in grid}) == [3, 4, 5, 6]
    assert {(p.w2, p.sigma_gamma, p.iterations) for p in grid} == {(3, 3, 10)}


def test_fine_grid_refines_around_the_best():
    best = DenseCRFParams(w1=4, sigma_alpha=50, sigma_beta=3)
    grid = fine_grid(best)
    assert len(grid) == 27 and best in grid
    assert sorted({p.w1 for p in grid}) == [3.5, 4, 4.5]
    assert sorted({p.sigma_alpha for p in grid}) == [45, 50, 55]
    assert sorted({p.sigma_beta for p in grid}) == [2.5, 3, 3.5]
    assert len(fine_grid(DenseCRFParams(w1=0.2, sigma_beta=0.5))) == 2 * 3 * 2  # only valid values


@pytest.fixture(scope="module")
def tiny_case():
    """Two 24x32 images of three flat colour regions (one per class), their labels and blobby
    probabilities whose arg-max is wrong near the region borders."""
    rng = np.random.default_rng(0)
    images, labels, probabilities = [], [], []
    for seed in range(2):
        label = np.zeros((24, 32), np.uint8)
        label[:, 12 + 4 * seed:] = 1
        label[14:, 20:] = 2
        label[0, 0] = 255  # ignored
        palette = np.array([[30, 30, 30], [200, 60, 60], [60, 200, 60]])
        image = np.clip(palette[np.minimum(label, 2)] + rng.integers(-8, 8, (24, 32, 3)), 0, 255).astype(np.uint8)
        images.append(image)
        labels.append(label)
        probabilities.append(blobby_probabilities(label, 3, seed=seed, stride=4, noise_std=0.3))
    return images, probabilities, labels


def miou(predictions, labels):
    return segmentation_metrics(sum(confusion_matrix(l, p, 3) for l, p in zip(labels, predictions)))["miou"]


def test_search_finds_the_best_setting_of_both_stages(tiny_case):
    images, probabilities, labels = tiny_case
    result = search_crf_params(images, probabilities, labels, num_classes=3, processes=1, progress=False)
    assert len(result.trials) == 128 + 26
    coarse_best = max(result.trials[:128], key=lambda t: t[1])[0]
    assert [p for p, _ in result.trials[128:]] == [p for p in fine_grid(coarse_best) if p != coarse_best]
    assert result.best_miou == max(m for _, m in result.trials)
    assert result.unary_miou == pytest.approx(miou([p.argmax(-1) for p in probabilities], labels))
    assert result.best_miou > result.unary_miou
    # independent check of the reported score, with the TensorFlow backend
    refined = [refine(i, p, result.best).argmax(-1) for i, p in zip(images, probabilities)]
    assert miou(refined, labels) == pytest.approx(result.best_miou, abs=1e-6)


def test_parallel_search_gives_the_same_result(tiny_case, capfd):
    images, probabilities, labels = tiny_case
    serial = search_crf_params(images[:1], probabilities[:1], labels[:1], 3, processes=1, progress=False)
    parallel = search_crf_params(images[:1], probabilities[:1], labels[:1], 3, processes=2, progress=True)
    assert parallel == serial
    assert "crf search (coarse, 128 settings) [" + "#" * 30 + "] 128/128" in capfd.readouterr().err


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


@pytest.mark.parametrize("terminal", [False, True], ids=["log_file", "terminal"])
def test_progress_is_redrawn_on_a_terminal_and_whole_lines_elsewhere(tiny_case, monkeypatch, terminal):
    """A log file or a pipe gets whole lines, without carriage returns; a terminal gets one line
    per stage, redrawn in place."""
    stream = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    images, probabilities, labels = tiny_case
    search_crf_params(images[:1], probabilities[:1], labels[:1], 3, processes=1)
    text, stages = stream.getvalue(), (("coarse", 128), ("fine", 26))
    full = [f"crf search ({stage}, {count} settings) [{'#' * 30}] {count}/{count}  " for stage, count in stages]
    if terminal:
        lines = text.split("\n")
        assert len(lines) == 3 and lines[2] == ""
        for line, last in zip(lines, full):
            assert line.startswith("\r") and line.split("\r")[-1].startswith(last)
    else:
        assert "\r" not in text and text.endswith("\n")
        for (stage, count), last in zip(stages, full):
            lines = [line for line in text.splitlines() if line.startswith(f"crf search ({stage}, ")]
            assert lines[0].startswith(f"crf search ({stage}, {count} settings) [") and f"] 1/{count}  " in lines[0]
            assert lines[-1].startswith(last)


def test_search_refuses_mismatched_lists(tiny_case):
    images, probabilities, labels = tiny_case
    with pytest.raises(ValueError, match="Need equally many images, probabilities and labels"):
        search_crf_params(images, probabilities[:1], labels, 3)


def test_crf_search_writes_params_next_to_the_model(tmp_path):
    """An untrained tiny `demo` model, saved as training saves it, and 1 held-out image."""
    import tensorflow as tf

    from deeplab_tf.assembly import assemble
    from deeplab_tf.training.checkpoints import checkpoint_dir, model_weights
    from deeplab_tf.config import apply_overrides
    from deeplab_tf.evaluation.crf_search import search_model
    from experiments import get_experiment

    experiment = apply_overrides(
        get_experiment("demo"), "model.aspp_filters=16,model.decoder_filters=16,model.low_level_filters=8"
    )
    model = assemble(experiment).model
    tf.train.Checkpoint(model_weights=model_weights(model)).save(os.path.join(checkpoint_dir(str(tmp_path)), "ckpt"))
    summary = search_model(experiment, str(tmp_path), num_images=1, processes=2, progress=False, log=lambda line: None)
    written = json.loads((tmp_path / "crf_params.json").read_text())
    assert written["num_images"] == 1 and written["split"] == "val" and len(written["trials"]) >= 128
    assert load_params(str(tmp_path / "crf_params.json")) == DenseCRFParams(**summary["params"])
    assert written["miou"] == max(t["miou"] for t in written["trials"])


def test_crf_search_cli_reports_a_missing_checkpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deeplab_tf.cli.crf_search", "--experiment=demo", f"--model_dir={tmp_path / 'none'}"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: No checkpoint at" in result.stderr and "Traceback" not in result.stderr
