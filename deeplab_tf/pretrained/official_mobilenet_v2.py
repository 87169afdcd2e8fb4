"""The official DeepLabv3 MobileNetV2 (tensorflow/models `research/deeplab`, depth 1.0 or 0.5)
built by `deeplab_tf.models.build_model` from `official_config.official_model_config` (the model
of `experiments/official.py`), batch norms folded, and the official graph's input for one image.

The official graphs pad every image (H, W <= 513) bottom/right to 513x513 with the mean pixel
127.5 (`preprocess`; at evaluation and export `eval.pad_to_size`), so their image pooling, a
65x65 VALID average pool, is the global average pool of `ASPP`. The published TF.js / TFLite
files hold batch norms folded into the convolutions, so `build_official_mobilenet_v2` folds them
(`deeplab_tf.models.fold_batch_norm`): an inference model whose convolutions have biases.
"""

import keras
import numpy as np

from deeplab_tf.backbones.normalization import tf_normalize
from deeplab_tf.config import ModelConfig
from deeplab_tf.models import build_model
from deeplab_tf.models.deeplab import CLASSIFIER_LAYER
from deeplab_tf.models.fold_batch_norm import fold_batch_norm
from deeplab_tf.pretrained.official_config import official_model_config

CROP_SIZE = 513
"""Side of the padded square image the official graph always runs on."""
MEAN_PIXEL = 127.5
"""The official pad value (`mean_pixel` of mobilenet_v2); 0.0 after normalisation."""


def build_official_mobilenet_v2(config: ModelConfig = official_model_config(), num_classes: int = 21) -> keras.Model:
    """Returns `build_model(config, num_classes).model` with every batch norm folded and random
    weights (load them with `tfjs_mobilenet_v2.load_tfjs_mobilenet_v2` or
    `tflite_mobilenet_v2.load_tflite_mobilenet_v2`): normalised float32 images [B, H, W, 3] ->
    logits float32 [B, H, W, num_classes]. The layer `CLASSIFIER_LAYER` outputs the logits at the
    output stride (65x65 at OS 8 for a 513x513 input)."""
    return fold_batch_norm(build_model(config, num_classes).model)


def preprocess(image: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Returns the official graph's input for one RGB image uint8 [H, W, 3], H, W <= `size`:
    float32 [1, size, size, 3], the image padded bottom/right with `MEAN_PIXEL`, then scaled to
    [-1, 1] by `tf_normalize` (x / 127.5 - 1, the official `_preprocess_zero_mean_unit_range`
    x * 2/255 - 1). Raises ValueError for another dtype, rank or a side larger than `size`."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height > size or width > size:
        raise ValueError(f"the official model takes images of at most {size}x{size}, got {height}x{width}")
    padded = np.full((size, size, 3), MEAN_PIXEL, np.float32)
    padded[:height, :width] = image
    return np.asarray(tf_normalize(padded[None]))
