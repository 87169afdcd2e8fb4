"""The reference backend: pydensecrf (Krähenbühl's densecrf), one image per call or a process pool."""

import multiprocessing

import numpy as np

from deeplab_tf.crf.inputs import unary_energy
from deeplab_tf.crf.params import DenseCRFParams


def refine_pydensecrf(image, probabilities, params: DenseCRFParams = DenseCRFParams()) -> np.ndarray:
    """Returns pydensecrf's refined probabilities, float32 [H, W, C].

    `image` is uint8 [H, W, 3], `probabilities` float32 [H, W, C], both already checked
    (`deeplab_tf.crf.inputs.check_inputs`). Unary -log max(P, 1e-5); Gaussian kernel
    (sxy=sigma_gamma, compat=w2) then bilateral kernel (sxy=sigma_alpha, srgb=sigma_beta,
    compat=w1), both with pydensecrf's defaults (DIAG_KERNEL, NORMALIZE_SYMMETRIC).
    """
    import pydensecrf.densecrf as dcrf

    height, width, classes = probabilities.shape
    crf = dcrf.DenseCRF2D(width, height, classes)
    unary = unary_energy(probabilities).reshape(-1, classes).T
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.sigma_gamma, compat=params.w2)
    crf.addPairwiseBilateral(
        sxy=params.sigma_alpha, srgb=params.sigma_beta, rgbim=np.ascontiguousarray(image), compat=params.w1
    )
    refined = np.asarray(crf.inference(params.iterations), np.float32)
    return refined.reshape(classes, height, width).transpose(1, 2, 0)


def _refine_pair(args):
    image, probabilities, params = args
    return refine_pydensecrf(image, probabilities, params)


def refine_many(images, probabilities, params: DenseCRFParams = DenseCRFParams(), processes: int | None = None) -> list:
    """Returns `refine_pydensecrf` of each (image, probabilities) pair, in order, as a list of
    float32 [H, W, C] arrays; images may differ in size.

    Runs in a pool of `processes` forked workers (default: one per CPU core; 1 = in this process).
    """
    tasks = [(image, probability, params) for image, probability in zip(images, probabilities, strict=True)]
    processes = processes or multiprocessing.cpu_count()
    if processes == 1 or len(tasks) <= 1:
        return [_refine_pair(task) for task in tasks]
    with multiprocessing.get_context("fork").Pool(min(processes, len(tasks))) as pool:
        return pool.map(_refine_pair, tasks, chunksize=1)
