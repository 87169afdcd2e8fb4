"""Modified aligned Xception-65, the DeepLabv3+ backbone, at output stride 8, 16 or 32.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation", arXiv:1802.02611, Sec. 3.2 and Fig. 4; layer for layer as DeepLab's TF
reference `research/deeplab/core/xception.py` (`xception_65`):

- entry flow: 3x3 convs 32 (stride 2) and 64, each + BN + ReLU; blocks of three separable
  convs with 128, 256, 728 channels, the third with stride 2, plus a strided 1x1 conv + BN
  shortcut;
- middle flow: 16 blocks of three 728-channel separable convs with identity shortcuts;
- exit flow: one block (728, 1024, 1024; stride 2; 1x1 conv shortcut), then separable convs
  1536, 1536, 2048 without shortcut.

Every separable conv is a `SeparableAtrousConv2D` (depthwise, BN, pointwise) followed by BN.
As in the reference (`activation_fn_in_separable_conv`), the entry, middle and first exit
blocks apply ReLU *before* each separable conv and none between its depthwise BN and its
pointwise conv; the last exit block applies ReLU after the depthwise BN and after the
pointwise BN. (The paper's "extra batch normalization and ReLU after each 3x3 depthwise
convolution" describes only that last block literally; we follow the code that produced the
published numbers and checkpoints.)

Output stride (`stack_blocks_dense`): from the root's stride 2, a unit whose input already
has the target stride gets stride 1, its convs the current atrous rate, and the rate is then
multiplied by the unit's stride. Strided convs pad like DeepLab's `fixed_padding` (see
`deeplab_tf.layers.separable_atrous_conv`), so each stride 2 maps size `n` to `ceil(n / 2)`.

Features, keyed as keras-hub's `{"Pn"}` with stride `min(2**n, output_stride)`: P2, P3 and P4
are the pointwise BN outputs of the second separable conv of entry blocks 2 and 3 and exit
block 1 (the last features before each stride-2 conv; DeepLab's `DECODER_END_POINTS` for
strides 4, 8 and 16, P2 being DeepLabv3+'s low-level feature); P5 is the final output.
"""

import keras

from deeplab_tf.backbones.checks import check_multi_grid
from deeplab_tf.backbones.checks import check_weights_file
from deeplab_tf.backbones.output_stride import check_output_stride
from deeplab_tf.layers.padding import same_padding
from deeplab_tf.layers.separable_atrous_conv import SeparableAtrousConv2D

NORMALIZATION = "tf"  # key of `NORMALIZERS`: images / 127.5 - 1, as DeepLab's Xception
FEATURE_CHANNELS = {"P2": 256, "P3": 728, "P4": 1024, "P5": 2048}
BATCH_NORM_MOMENTUM = 0.9997  # the reference's batch_norm_decay and epsilon
BATCH_NORM_EPSILON = 1e-3
MULTI_GRID_UNITS = 3  # the separable convs of the last exit-flow block

# (name, channels of the 3 separable convs, shortcut "conv" / "sum" / None, units, stride of
# each unit (that of its third separable conv), whether ReLUs sit inside the separable convs)
BLOCKS = (
    ("entry_flow_block1", (128, 128, 128), "conv", 1, 2, False),
    ("entry_flow_block2", (256, 256, 256), "conv", 1, 2, False),
    ("entry_flow_block3", (728, 728, 728), "conv", 1, 2, False),
    ("middle_flow_block1", (728, 728, 728), "sum", 16, 1, False),
    ("exit_flow_block1", (728, 1024, 1024), "conv", 1, 2, False),
    ("exit_flow_block2", (1536, 1536, 2048), None, 1, 1, True),
)
# Block -> level of the output of its second separable conv (its "_sepconv2_pointwise_bn").
FEATURE_BLOCKS = {"entry_flow_block2": "P2", "entry_flow_block3": "P3", "exit_flow_block1": "P4"}


def _batch_norm(name):
    return keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM,
                                           epsilon=BATCH_NORM_EPSILON, name=name)


def _conv_bn_relu(x, filters, strides, padding, name):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding=padding, use_bias=False,
                            name=name)(x)
    x = _batch_norm(f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _separable_conv(x, filters, rate, strides, relu_inside, name):
    """[ReLU] -> depthwise -> BN -> [ReLU] -> pointwise -> BN -> [ReLU], named `name_*`."""
    if not relu_inside:
        x = keras.layers.ReLU(name=f"{name}_preact")(x)
    x = SeparableAtrousConv2D(
        filters, 3, rate=rate, strides=strides, activation_between="relu" if relu_inside else None,
        batch_norm_momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON, name=name)(x)
    x = _batch_norm(f"{name}_pointwise_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu_inside else x


def _xception_module(x, channels, shortcut, strides, rates, relu_inside, name):
    """Three separable convs (the third with `strides`, the i-th with `rates[i]`) plus the
    `shortcut` of input `x`.

    Returns the module's output and that of its second separable conv.
    """
    hidden = [x]
    for i, (filters, rate) in enumerate(zip(channels, rates), start=1):
        hidden.append(_separable_conv(hidden[-1], filters, rate, strides if i == 3 else 1,
                                      relu_inside, f"{name}_sepconv{i}"))
    residual = hidden[-1]
    if shortcut == "conv":
        x = keras.layers.Conv2D(channels[-1], 1, strides=strides, use_bias=False,
                                name=f"{name}_shortcut")(x)
        x = _batch_norm(f"{name}_shortcut_bn")(x)
    if shortcut is not None:
        residual = keras.layers.Add(name=f"{name}_add")([residual, x])
    return residual, hidden[2]


WEIGHTS_EXPECTED = (
    "Xception-65 has no Keras Applications ImageNet weights (Keras' xception_*.h5 files are for "
    "Keras' Xception, a different network). Pass the local path of a .weights.h5 file saved "
    "from a model built by build_xception65."
)


def build_xception65(output_stride=16, weights=None, multi_grid=None):
    """Builds DeepLabv3+'s modified aligned Xception-65 as a feature extractor.

    Args:
        output_stride: int. 8, 16 or 32: the stride of "P5". Defaults to 16.
        weights: `None` (random init) or the path of a local `.weights.h5` file written by
            `model.save_weights` from a model built here; any output stride fits, as they all
            have the same layers. DeepLab's published ImageNet checkpoint is a TF1 checkpoint
            with another layout; loading it is out of scope. Defaults to `None`.
        multi_grid: tuple of 3 ints or `None`. DeepLabv3's multi-grid (arXiv:1706.05587,
            Sec. 3.2) as the reference's `unit_rate_list`: the three separable convs of the
            last exit-flow block get dilation `rate * multi_grid[i]`, where `rate` is that
            block's atrous rate (1, 2, 4 at output stride 32, 16, 8). Defaults to `None`,
            i.e. (1, 1, 1).

    Returns:
        `keras.Model` taking float32 images `[batch, height, width, 3]` (any size, normalised
        with `NORMALIZERS[NORMALIZATION]`, i.e. to [-1, 1]) and returning a dict of float32
        tensors `{"Pn": [batch, ceil(height / s), ceil(width / s), FEATURE_CHANNELS["Pn"]]}`
        with `s = min(2**n, output_stride)`. Sizes `k * output_stride + 1` (DeepLab's 513)
        keep the corners of every level on input pixels. Call it with `training=False` to
        use the BatchNorm moving statistics. Its separable convs use their default atrous
        implementation (`apply_speed_choices` of `deeplab_tf.layers.speed_choices` sets another).

    Example:
    ```python
    backbone = build_xception65(output_stride=16)
    features = backbone(NORMALIZERS[NORMALIZATION](images), training=False)
    features["P5"].shape  # (batch, 33, 33, 2048) for 513x513 images
    ```
    """
    check_output_stride(output_stride)
    path = check_weights_file("xception65", weights, WEIGHTS_EXPECTED, suffix=".weights.h5")
    grid = (1, 1, 1) if multi_grid is None else check_multi_grid(
        multi_grid, MULTI_GRID_UNITS, "separable conv of the last exit-flow block")
    images = keras.Input((None, None, 3), name="images")
    # The strided root conv pads as DeepLab's `fixed_padding`: the stride-1 "same" zeros.
    x = keras.layers.ZeroPadding2D((same_padding(3),) * 2, name="entry_flow_conv1_1_pad")(images)
    x = _conv_bn_relu(x, 32, 2, "valid", "entry_flow_conv1_1")
    x = _conv_bn_relu(x, 64, 1, "same", "entry_flow_conv1_2")
    stride, rate, features = 2, 1, {}
    for block, channels, shortcut, units, block_stride, relu_inside in BLOCKS:
        unit_rates = grid if block == "exit_flow_block2" else (1, 1, 1)
        for unit in range(1, units + 1):
            rates = tuple(rate * m for m in unit_rates)
            if stride == output_stride:  # atrous instead of striding from here on
                unit_stride, rate = 1, rate * block_stride
            else:
                unit_stride, stride = block_stride, stride * block_stride
            x, hidden = _xception_module(x, channels, shortcut, unit_stride, rates, relu_inside,
                                         f"{block}_unit{unit}")
        if block in FEATURE_BLOCKS:
            features[FEATURE_BLOCKS[block]] = hidden
    features["P5"] = x
    model = keras.Model(images, features, name=f"xception65_os{output_stride}")
    if path is not None:
        model.load_weights(path)
    return model
