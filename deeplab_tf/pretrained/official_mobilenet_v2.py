"""The official DeepLabv3 MobileNetV2 (depth 1.0, output stride 8) as a Keras model built from
deeplab-tf's parts, batch norms folded, and the official model's pre- and post-processing.

The official network (tensorflow/models `research/deeplab`, e.g. `deeplabv3_mnv2_pascal_trainval`)
is Keras Applications' MobileNetV2 (alpha 1.0) cut after `block_16_project_BN`, dilated to output
stride 8 by `deeplab_tf.backbones.dilate_to_output_stride`, then `deeplab_tf.layers.ASPP` with no
atrous branch (1x1 + image pooling + projection), a 1x1 classifier and an align-corners bilinear
resize of the 65x65 logits to the 513x513 padded image.

Two details make the Keras parts equal to the official graph:
- the input is static 513x513, always: the official graph pads every image (H, W <= 513) to
  513x513, bottom/right, with the mean pixel 127.5 (`preprocess`), and at odd static sizes
  Keras' MobileNetV2 pads its stride-2 depthwise convs (1, 1) as TF's "SAME" does (at an
  unknown size it pads (0, 1));
- the official image pooling is a 65x65 VALID average pool over the whole padded 65x65 map,
  i.e. the global average pool of `ASPP`, and its 1x1 -> 65x65 resize is a broadcast under any
  sampling.
The published TF.js / TFLite files hold batch norms folded into the convolutions, so the model
is returned with every batch norm folded (`deeplab_tf.models.fold_batch_norm`): each convolution
has a bias, and the model has no BatchNormalization layer. It is an inference model.
"""

import keras
import numpy as np

from deeplab_tf.backbones.keras_applications import MOBILENET_V2
from deeplab_tf.backbones.normalization import tf_normalize
from deeplab_tf.backbones.output_stride import dilate_to_output_stride
from deeplab_tf.layers.aspp import ASPP
from deeplab_tf.layers.resize import ResizeToMatch
from deeplab_tf.models.fold_batch_norm import fold_batch_norm

CROP_SIZE = 513
"""Side of the padded square image the official model always runs on."""
OUTPUT_STRIDE = 8
MEAN_PIXEL = 127.5
"""The official pad value (`mean_pixel` of mobilenet_v2); 0.0 after normalisation."""
BACKBONE_OUTPUT = "block_16_project_BN"
LOGITS_LAYER = "logits"


def preprocess(image: np.ndarray) -> np.ndarray:
    """Returns the official model's input for one RGB image uint8 [H, W, 3], H, W <= 513:
    float32 [1, 513, 513, 3], the image padded bottom/right with `MEAN_PIXEL`, then scaled to
    [-1, 1] by `tf_normalize` (x / 127.5 - 1, the official `_preprocess_zero_mean_unit_range`
    x * 2/255 - 1). Raises ValueError for another dtype, rank or a side larger than 513."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height > CROP_SIZE or width > CROP_SIZE:
        raise ValueError(f"the official model takes images of at most {CROP_SIZE}x{CROP_SIZE}, got {height}x{width}")
    padded = np.full((CROP_SIZE, CROP_SIZE, 3), MEAN_PIXEL, np.float32)
    padded[:height, :width] = image
    return np.asarray(tf_normalize(padded[None]))


def build_official_mobilenet_v2(num_classes: int = 21) -> keras.Model:
    """Returns the official DeepLabv3 MobileNetV2 (depth 1.0, output stride 8) with batch norms
    folded and random weights (load them with e.g. `tfjs_mobilenet_v2.load_tfjs_mobilenet_v2`).

    The model maps `preprocess`ed images float32 [B, 513, 513, 3] to logits float32
    [B, 513, 513, num_classes] (layer "upsample_logits", align corners); the 65x65 logits of
    the official `logits/semantic/BiasAdd` are the output of the layer `LOGITS_LAYER`. Layers:
    the backbone sub-model "mobilenet_v2_os8" (Keras Applications names, e.g. "block_7_depthwise"),
    the `ASPP` sub-model "aspp", the classifier "logits"."""
    stock = MOBILENET_V2.application(include_top=False, weights=None, alpha=1.0,
                                     input_shape=(CROP_SIZE, CROP_SIZE, 3))
    features = keras.Model(stock.input, stock.get_layer(BACKBONE_OUTPUT).output, name="mobilenet_v2_os8")
    backbone = dilate_to_output_stride(features, OUTPUT_STRIDE)
    images = keras.Input((CROP_SIZE, CROP_SIZE, 3), name="images")
    x = backbone(images)
    x = ASPP(input_channels=x.shape[-1], rates=(), filters=256, image_pooling=True, name="aspp")(x)
    logits = keras.layers.Conv2D(num_classes, 1, name=LOGITS_LAYER)(x)
    logits = ResizeToMatch(align_corners=True, name="upsample_logits")([logits, images])
    return fold_batch_norm(keras.Model(images, logits, name="deeplab_v3_mobilenet_v2_official"))


def predict_labels(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """Returns the official `SemanticPredictions` of `model` (from `build_official_mobilenet_v2`)
    for one RGB image uint8 [H, W, 3]: int64 [H, W], the argmax of the 513x513 logits cropped to
    the image (ties: the first class, as TF's ArgMax)."""
    logits = np.asarray(model(preprocess(image), training=False))
    height, width = image.shape[:2]
    return np.argmax(logits[0, :height, :width], axis=-1)
