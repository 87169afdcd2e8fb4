"""DeepLab's fully connected CRF post-processing (Krähenbühl & Koltun 2011).

`refine(image, probabilities, params, backend)` refines one image with the TensorFlow backend
(standard ops: runs in tf.function, SavedModel and TF Serving) or pydensecrf (the reference);
`refine_batch` is the batched TensorFlow form for models and exports; `refine_many` runs
pydensecrf over many images in a process pool. `DenseCRFParams` holds the parameters;
`deeplab_tf.evaluation.crf_search.search_crf_params` (and `python -m deeplab_tf.cli.crf_search` for a trained
model) finds them with DeepLab's coarse-to-fine search and `load_params` reads the result.
"""

from deeplab_tf.crf.params import PARAMS_FILE, DenseCRFParams, load_params, save_params
from deeplab_tf.crf.pydensecrf_backend import refine_many, refine_pydensecrf
from deeplab_tf.crf.refine import BACKENDS, refine
from deeplab_tf.crf.tf_backend import refine_batch

__all__ = [
    "BACKENDS",
    "PARAMS_FILE",
    "DenseCRFParams",
    "load_params",
    "refine",
    "refine_batch",
    "refine_many",
    "refine_pydensecrf",
    "save_params",
]
