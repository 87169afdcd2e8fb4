"""DeepLab v1 and v2 as functional Keras models: atrous branches whose class scores are summed.

Papers: DeepLab v1 (Chen et al., arXiv:1412.7062, Sec. 3.1, Table 2) and DeepLab v2
(arXiv:1606.00915, Sec. 3.1-3.2, Fig. 4, Tables 1, 3 and 4).

backbone at output stride 8 -> ["pool5a"] -> one branch per atrous rate -> class scores
summed (ASPP; one rate is a single branch) -> bilinear resize to the input resolution.

A branch is either
- "fc" (VGG-16 models): fc6 = k x k atrous conv with C channels, ReLU, dropout; fc7 = 1x1 conv
  with C channels, ReLU, dropout; fc8 = 1x1 conv to the classes. v1 Table 2: DeepLab-CRF-7x7
  (k=7, rate 4, C=4096, 134.3M parameters with 21 classes), DeepLab-CRF (4x4, rate 4, 4096,
  65.1M), DeepLab-CRF-4x4 (4x4, rate 8, 4096, 65.1M), DeepLab-CRF-LargeFOV (3x3, rate 12,
  1024, 20.5M). v2 ASPP-S / ASPP-L: four 3x3 fc branches at rates (2, 4, 8, 12) /
  (6, 12, 18, 24), 1024 channels.
- "classifier" (ResNet-101 models, v2 Sec. 4.1, Table 4): one k x k atrous conv straight to the
  classes; ASPP-L = rates (6, 12, 18, 24), LargeFOV = rate 12.

Class-score layers start from N(0, 0.01) weights, as DeepLab's fc8 does. fc6 and fc7 start,
as in DeepLab, from VGG-16's ImageNet fc1 / fc2 decimated to their size
(`backbones.vgg16.fully_connected_as_convolutions`) when `weights` is the Keras Applications
VGG-16 file with the top (vgg16_weights_tf_dim_ordering_tf_kernels.h5); with the no-top file
or no file, from Glorot uniform.
"""

import keras

from deeplab_tf import backbones
from deeplab_tf.backbones import vgg16
from deeplab_tf.layers.atrous_conv import AtrousConv2D
from deeplab_tf.layers.resize import ResizeToMatch

HEADS = ("fc", "classifier")


def _check_arguments(head, rates):
    """Raises ValueError naming an invalid `head` or `rates` (AtrousConv2D checks the values)."""
    if head not in HEADS:
        raise ValueError(f"`head` must be one of {HEADS}. Received: head={head!r}")
    if not isinstance(rates, (tuple, list)) or not rates or len(set(rates)) != len(rates):
        raise ValueError(f"`rates` must be a non-empty tuple of distinct ints, one per branch. "
                         f"Received: rates={rates!r}")


def _branch(x, rate, num_classes, head, kernel_size, fc_channels, dropout_rate, implementation):
    """Returns the class scores [B, h, w, num_classes] of the `head` branch at `rate`."""
    scores_kernel, scores_rate = kernel_size, rate
    if head == "fc":
        x = AtrousConv2D(fc_channels, kernel_size, rate=rate, implementation=implementation,
                         activation="relu", name=f"fc6_rate{rate}")(x)
        x = keras.layers.Dropout(dropout_rate, name=f"drop6_rate{rate}")(x)
        x = keras.layers.Conv2D(fc_channels, 1, activation="relu", name=f"fc7_rate{rate}")(x)
        x = keras.layers.Dropout(dropout_rate, name=f"drop7_rate{rate}")(x)
        scores_kernel, scores_rate = 1, 1  # fc8
    return AtrousConv2D(num_classes, scores_kernel, rate=scores_rate,
                        implementation=implementation,
                        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                        name=f"logits_rate{rate}")(x)


def build_deeplab_v2(
    backbone: str,
    num_classes: int,
    head: str,
    rates: tuple,
    kernel_size: int = 3,
    fc_channels: int = 1024,
    dropout_rate: float = 0.5,
    pool5a: bool = False,
    output_stride: int = 8,
    weights: str | None = None,
    atrous_implementation: str = "auto",
    alpha: float = 1.0,
) -> keras.Model:
    """Builds DeepLab v1 / v2: summed atrous branches on a backbone, logits at input size.

    Reference: Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", arXiv:1606.00915 (and arXiv:1412.7062).

    Args:
        backbone: str. A name of `deeplab_tf.backbones.BACKBONES`: "vgg16" for the VGG-16
            models, "resnet101" / "resnet50" for the ResNet ones.
        num_classes: int. Number of classes scored.
        head: str. Kind of each branch: "fc" (fc6 -> fc7 -> fc8, the VGG-16 models) or
            "classifier" (one atrous conv to the classes, the ResNet models).
        rates: tuple of distinct ints. One branch per atrous rate, their scores summed: e.g.
            (12,) for LargeFOV, (6, 12, 18, 24) for ASPP-L, (2, 4, 8, 12) for ASPP-S.
        kernel_size: int. Side of each branch's atrous kernel (fc6, or the classifier); even
            sizes pad as TensorFlow's "same". Defaults to 3.
        fc_channels: int. Channels of fc6 and fc7; "fc" head only. Defaults to 1024.
        dropout_rate: float. Dropout after fc6 and fc7; "fc" head only. Defaults to 0.5.
        pool5a: bool. Whether a 3x3 stride-1 "same" average pooling (no weights) precedes the
            branches, as layer "pool5a" of the released DeepLab-LargeFOV prototxt (not in the
            papers' text; Keras averages over the valid pixels at the border, Caffe over the
            window). Defaults to False.
        output_stride: int. Output stride of the backbone: 8 in the papers (16, 32 also
            build). Defaults to 8.
        weights: str or `None`. Local path of the backbone's Keras Applications ImageNet
            weight file, or `None` for random init. For "vgg16" with the "fc" head, the file
            with the top (vgg16_weights_tf_dim_ordering_tf_kernels.h5) also initialises every
            branch's fc6 / fc7 from fc1 / fc2, decimated to `kernel_size` and `fc_channels`
            (which must then be at most 7 and divide 4096); the no-top file leaves them at
            random init. Defaults to `None`.
        atrous_implementation: str. One of `deeplab_tf.layers.ATROUS_IMPLEMENTATIONS`, for
            the backbone and the branches. Defaults to "auto".
        alpha: float. Width multiplier of "mobilenet_v2" backbones. Defaults to 1.0.

    Returns:
        `keras.Model` mapping float32 images [B, H, W, 3] (any H, W; normalised with
        `deeplab_tf.backbones.get_normalizer(backbone)`) to float32 logits
        [B, H, W, num_classes]. Layers: the backbone sub-model, then per rate r
        "fc6_rate{r}", "fc7_rate{r}" ("fc" head) and "logits_rate{r}", then "logits_sum"
        (several rates) and "upsample_logits".

    Example:
    ```python
    largefov = build_deeplab_v2("vgg16", 21, head="fc", rates=(12,))  # 20.5M parameters
    aspp_l = build_deeplab_v2("resnet101", 21, head="classifier", rates=(6, 12, 18, 24))
    logits = largefov(normalize(images, "vgg16"), training=False)  # [B, H, W, 21]
    ```
    """
    _check_arguments(head, rates)
    features = backbones.build_backbone(backbone, output_stride=output_stride, weights=weights,
                                        atrous_implementation=atrous_implementation, alpha=alpha)
    images = keras.Input(shape=(None, None, 3), name="images")
    x = features(images)["P5"]
    if pool5a:
        x = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="pool5a")(x)
    scores = [_branch(x, rate, num_classes, head, kernel_size, fc_channels, dropout_rate,
                      atrous_implementation) for rate in rates]
    logits = scores[0] if len(scores) == 1 else keras.layers.Add(name="logits_sum")(scores)
    logits = ResizeToMatch(name="upsample_logits")([logits, images])
    model = keras.Model(images, logits, name=f"deeplab_v2_{backbone}")
    if backbone == "vgg16" and head == "fc" and weights is not None and vgg16.has_fully_connected_weights(weights):
        _load_fully_connected(model, weights, rates, kernel_size, fc_channels)
    return model


def _load_fully_connected(model, path, rates, kernel_size, fc_channels):
    """Sets fc6 / fc7 of every branch of `model` from VGG-16's fc1 / fc2 stored in `path`."""
    converted = vgg16.fully_connected_as_convolutions(path, kernel_size, fc_channels)
    for rate in rates:
        for name in ("fc6", "fc7"):
            model.get_layer(f"{name}_rate{rate}").set_weights(converted[name])
