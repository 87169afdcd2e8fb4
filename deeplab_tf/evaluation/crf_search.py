"""Coarse-to-fine search of the CRF parameters on held-out images (DeepLab v2, Sec. 4.1).

The paper fixes w2 = 3 and sigma_gamma = 3, searches w1 in [3:6], sigma_alpha in [30:10:100]
and sigma_beta in [3:6] (MATLAB notation) by mIoU on a held-out subset, then refines the step
sizes around the best values. Here the second stage tries w1 +- 0.5, sigma_alpha +- 5 and
sigma_beta +- 0.5 around the first stage's best (27 settings, the best one not re-run). Every
(setting, image) pair is refined by pydensecrf in a pool of forked worker processes.

`search_model` runs the search for a trained model: its probabilities on held-out images, the
search, and the result written next to the model (`python -m deeplab_tf.cli.crf_search`).
"""

import dataclasses
import itertools
import multiprocessing
import os
import time

import numpy as np

from deeplab_tf.assembly import assemble
from deeplab_tf.crf.inputs import check_inputs
from deeplab_tf.crf.params import PARAMS_FILE, DenseCRFParams, save_params
from deeplab_tf.crf.pydensecrf_backend import refine_pydensecrf
from deeplab_tf.evaluation.evaluator import progress_bar
from deeplab_tf.evaluation.inference import keras_scorer
from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics
from deeplab_tf.training.checkpoints import resolve_checkpoint, restore_model


def coarse_grid(iterations: int = 10) -> list:
    """Returns the paper's first-stage settings (128): w1 in 3..6, sigma_alpha in 30..100 step 10,
    sigma_beta in 3..6, w2 = sigma_gamma = 3."""
    return [
        DenseCRFParams(w1=w1, sigma_alpha=alpha, sigma_beta=beta, w2=3, sigma_gamma=3, iterations=iterations)
        for w1, alpha, beta in itertools.product(range(3, 7), range(30, 101, 10), range(3, 7))
    ]


def fine_grid(best: DenseCRFParams) -> list:
    """Returns the second-stage settings: w1 +- 0.5, sigma_alpha +- 5, sigma_beta +- 0.5 around
    `best` (27 settings including `best`; values that would not be valid are left out)."""
    grid = []
    for w1, alpha, beta in itertools.product((-0.5, 0, 0.5), (-5, 0, 5), (-0.5, 0, 0.5)):
        if best.w1 + w1 >= 0 and best.sigma_alpha + alpha > 0 and best.sigma_beta + beta > 0:
            grid.append(dataclasses.replace(
                best, w1=best.w1 + w1, sigma_alpha=best.sigma_alpha + alpha, sigma_beta=best.sigma_beta + beta
            ))
    return grid


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """Outcome of `search_crf_params`: `best` params and their `best_miou`, the `unary_miou`
    without CRF, and `trials`, a list of (DenseCRFParams, mIoU) in evaluation order."""

    best: DenseCRFParams
    best_miou: float
    unary_miou: float
    trials: list


def search_crf_params(images, probabilities, labels, num_classes: int, ignore_label: int = 255,
                      processes: int | None = None, progress: bool = True) -> SearchResult:
    """Returns the coarse-to-fine search's best CRF parameters by mIoU over the given images.

    Args:
        images: list of uint8 [H, W, 3]. Held-out images (sizes may differ).
        probabilities: list of float32 [H, W, C]. The model's softmax output per image.
        labels: list of int [H, W]. Ground truth; `ignore_label` pixels are not counted.
        num_classes: int. C.
        ignore_label: int. Defaults to 255.
        processes: int. Worker processes (default one per CPU core; 1 = this process).
        progress: bool. Report progress on stderr (`evaluator.progress_bar`: redrawn in place on
            a terminal, a few whole lines in a log file or a pipe). Defaults to True.

    Raises ValueError as `check_inputs` for an invalid image/probabilities pair, or when the
    lists differ in length or are empty.
    """
    if not len(images) == len(probabilities) == len(labels) or not len(images):
        raise ValueError(f"Need equally many images, probabilities and labels (> 0), got "
                         f"{len(images)}, {len(probabilities)}, {len(labels)}")
    data = [check_inputs(image, probability) + (np.asarray(label),)
            for image, probability, label in zip(images, probabilities, labels)]
    unary = sum(confusion_matrix(label, probability.argmax(-1), num_classes, ignore_label)
                for _, probability, label in data)
    evaluate = _Evaluator(data, num_classes, ignore_label, processes, progress)
    trials = evaluate(coarse_grid(), "coarse")
    best = max(trials, key=lambda trial: trial[1])
    tried = {params for params, _ in trials}
    trials += evaluate([p for p in fine_grid(best[0]) if p not in tried], "fine")
    best = max(trials, key=lambda trial: trial[1])
    return SearchResult(best[0], best[1], segmentation_metrics(unary)["miou"], trials)


_DATA = None  # (image, probabilities, label) triples, inherited by forked workers


def _confusion(task):
    index, image_index, params, num_classes, ignore_label = task
    image, probability, label = _DATA[image_index]
    prediction = refine_pydensecrf(image, probability, params).argmax(-1)
    return index, confusion_matrix(label, prediction, num_classes, ignore_label)


class _Evaluator:
    """Maps a list of settings to [(params, mIoU)], refining every image for every setting."""

    def __init__(self, data, num_classes, ignore_label, processes, progress):
        self.data, self.num_classes, self.ignore_label = data, num_classes, ignore_label
        self.processes = processes or multiprocessing.cpu_count()
        self.progress = progress

    def __call__(self, candidates: list, stage: str) -> list:
        global _DATA
        _DATA = self.data
        tasks = [(i, j, params, self.num_classes, self.ignore_label)
                 for i, params in enumerate(candidates) for j in range(len(self.data))]
        confusions = [np.zeros((self.num_classes, self.num_classes), np.int64) for _ in candidates]
        # Each task refines one image: redrawn in place on a terminal, a few whole lines elsewhere.
        progress = (progress_bar(len(tasks), label=f"crf search ({stage}, {len(candidates)} settings) ")
                    if self.progress else None)
        if self.processes == 1:
            self._collect(map(_confusion, tasks), confusions, progress)
        else:
            with multiprocessing.get_context("fork").Pool(self.processes) as pool:
                self._collect(pool.imap_unordered(_confusion, tasks), confusions, progress)
        return [(params, segmentation_metrics(c)["miou"]) for params, c in zip(candidates, confusions)]

    @staticmethod
    def _collect(results, confusions, progress):
        start = time.perf_counter()
        for done, (index, confusion) in enumerate(results, start=1):
            confusions[index] += confusion
            if progress:
                progress(done, time.perf_counter() - start)


def held_out_probabilities(parts, split: str, num_images: int) -> tuple:
    """Returns (images, probabilities, labels): lists of uint8 [H, W, 3], float32 [H, W, C] (the
    model's softmax, `keras_scorer`) and uint8 [H, W] for the first `num_images` examples of
    `split`."""
    score = keras_scorer(parts.model, parts.normalize)
    images, probabilities, labels = [], [], []
    for example in parts.source.examples(split).take(num_images):
        images.append(example["image"].numpy())
        labels.append(example["label"].numpy())
        probabilities.append(score(example["image"][None])[0].numpy())
    if not images:
        raise ValueError(f"Split {split!r} of {parts.info.name} has no examples")
    return images, probabilities, labels


def params_path(model_dir: str, output: str | None = None) -> str:
    """Returns the file `search_model` writes: `output`, by default MODEL_DIR/crf_params.json."""
    return output or os.path.join(model_dir, PARAMS_FILE)


def search_model(experiment, model_dir: str, checkpoint=None, split=None, num_images=100, processes=None,
                 output=None, progress=True, log=print) -> dict:
    """Restores `experiment`'s model, searches CRF parameters on its held-out probabilities and
    writes them with the search summary to `output` (`params_path`: by default
    MODEL_DIR/crf_params.json). Returns the JSON content written.

    Raises FileNotFoundError / ValueError when there is no matching checkpoint, ValueError for
    num_images < 1 or an empty split.
    """
    if num_images < 1:
        raise ValueError(f"--num_images must be >= 1, got {num_images}")
    split = split or experiment.data.eval_split
    checkpoint = resolve_checkpoint(checkpoint or model_dir)  # fails before the model is built
    parts = assemble(experiment)
    restore_model(parts.model, checkpoint)
    images, probabilities, labels = held_out_probabilities(parts, split, num_images)
    log(f"Searching CRF parameters on {len(images)} images of {split!r} ({checkpoint})")
    result = search_crf_params(images, probabilities, labels, parts.info.num_classes, parts.info.ignore_label,
                               processes=processes, progress=progress)
    summary = dict(
        miou=result.best_miou, unary_miou=result.unary_miou, experiment=experiment.name, checkpoint=checkpoint,
        split=split, num_images=len(images), trials=[dict(p.to_dict(), miou=m) for p, m in result.trials],
    )
    output = params_path(model_dir, output)
    save_params(result.best, output, **summary)
    log(f"mIoU {result.unary_miou:.4f} without CRF, {result.best_miou:.4f} with {result.best}")
    log(f"Wrote {output}")
    return dict(params=result.best.to_dict(), **summary)
