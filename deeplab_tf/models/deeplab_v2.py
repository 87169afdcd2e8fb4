"""DeepLab v1 and v2 as functional Keras models: atrous branches whose class scores are summed.

Papers: DeepLab v1 (Chen et al., arXiv:1412.7062, Sec. 3.1, Table 2) and DeepLab v2
(arXiv:1606.00915, Sec. 3.1-3.2, Fig. 4, Tables 1, 3 and 4).

backbone at output stride 8 -> ["pool5a"] -> one branch per atrous rate -> class scores
summed (`deeplab_tf.layers.ASPP`, mode "sum"; one rate is a single branch) -> bilinear resize to
the input resolution.

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
from deeplab_tf.config import ModelConfig
from deeplab_tf.layers.aspp import ASPP
from deeplab_tf.layers.resize import ResizeToMatch

HEADS = ("fc", "classifier")


def build_deeplab_v2(config: ModelConfig, num_classes: int) -> keras.Model:
    """Builds DeepLab v1 / v2: summed atrous branches on a backbone, logits at input size.

    Reference: Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", arXiv:1606.00915 (and arXiv:1412.7062).

    Args:
        config: `ModelConfig` with `arch="deeplab_v2"`. Fields used: `backbone` ("vgg16" for
            the VGG-16 models, "resnet101" / "resnet50" for the ResNet ones; `backbone_alpha`
            for "mobilenet_v2"), `backbone_weights` (a local Keras Applications ImageNet file
            or ""), `output_stride` (8 in the papers), `head` ("fc": fc6 -> fc7 -> fc8, the
            VGG-16 models; "classifier": one atrous conv to the classes, the ResNet ones),
            `atrous_rates` (one branch per rate, scores summed: (12,) LargeFOV, (6, 12, 18, 24)
            ASPP-L, (2, 4, 8, 12) ASPP-S), `fc_kernel_size` (each branch's atrous kernel),
            `fc_channels` and `dropout_rate` ("fc" head), `pool5a` (a 3x3 stride-1 "same"
            average pooling without weights before the branches, layer "pool5a" of the released
            DeepLab-LargeFOV prototxt; Keras averages over the valid pixels at the border, Caffe
            over the window). For "vgg16" with the "fc" head, the Keras file with the top
            (vgg16_weights_tf_dim_ordering_tf_kernels.h5) also initialises every branch's fc6 /
            fc7 from fc1 / fc2, decimated to `fc_kernel_size` and `fc_channels` (which must
            then be at most 7 and divide 4096); the no-top file leaves them at random init.
        num_classes: int. Number of classes scored.

    Returns:
        `keras.Model` mapping float32 images [B, H, W, 3] (any H, W; normalised with
        `deeplab_tf.backbones.get_normalizer(backbone)`) to float32 logits
        [B, H, W, num_classes]. Layers: the backbone sub-model, ["pool5a"], the summed `ASPP`
        ("aspp": per rate r "fc6_rate{r}", "fc7_rate{r}" ("fc" head) and "logits_rate{r}",
        then "logits_sum" with several rates) and "upsample_logits".

    Example:
    ```python
    largefov = build_deeplab_v2(ModelConfig(arch="deeplab_v2", backbone="vgg16", output_stride=8,
                                            head="fc", atrous_rates=(12,)), 21)  # 20.5M parameters
    logits = largefov(normalize(images, "vgg16"), training=False)  # [B, H, W, 21]
    ```
    """
    if config.head not in HEADS:
        raise ValueError(f"model.head must be one of {HEADS}. Received: head={config.head!r}")
    weights = config.backbone_weights or None
    features = backbones.build_backbone(config.backbone, output_stride=config.output_stride, weights=weights,
                                        alpha=config.backbone_alpha)
    images = keras.Input(shape=(None, None, 3), name="images")
    x = features(images)["P5"]
    if config.pool5a:
        x = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="pool5a")(x)
    aspp = ASPP(input_channels=x.shape[-1], rates=config.atrous_rates, filters=num_classes, mode="sum",
                kernel_size=config.fc_kernel_size,
                branch_channels=config.fc_channels if config.head == "fc" else 0,
                dropout_rate=config.dropout_rate)
    logits = ResizeToMatch(name="upsample_logits")([aspp(x), images])
    model = keras.Model(images, logits, name=f"deeplab_v2_{config.backbone}")
    if (config.backbone == "vgg16" and config.head == "fc" and weights is not None
            and vgg16.has_fully_connected_weights(weights)):
        _load_fully_connected(aspp, weights, config.atrous_rates, config.fc_kernel_size, config.fc_channels)
    return model


def _load_fully_connected(aspp, path, rates, kernel_size, fc_channels):
    """Sets fc6 / fc7 of every branch of `aspp` from VGG-16's fc1 / fc2 stored in `path`."""
    converted = vgg16.fully_connected_as_convolutions(path, kernel_size, fc_channels)
    for rate in rates:
        for name in ("fc6", "fc7"):
            aspp.get_layer(f"{name}_rate{rate}").set_weights(converted[name])
