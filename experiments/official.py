"""The official DeepLab networks of tensorflow/models `research/deeplab` (TF1), exactly as
published, so their weights (TF.js / TFLite / TF1 checkpoints, `deeplab_tf.pretrained`) load
into `build_model` and compute the official graphs' numbers: the DeepLabv3 MobileNetV2 (VOC) and
the DeepLabv3+ Xception-65 (VOC, Cityscapes) networks of the TF DeepLab model zoo.

What makes them the official networks rather than `voc_v3_mnv2_coco`'s or
`voc_v3plus_xception65`'s Keras conventions: TF1's align-corners resizes (`model.align_corners`),
the official input scaling x / 127.5 - 1 of both backbones, and, at evaluation and export, every
image padded bottom/right with the mean pixel 127.5 (0 after scaling) to the official eval crop
(`eval.pad_to_size`: 513x513 for VOC, 1025x2049 for Cityscapes), so the logits' grid aligns with
the padded image as in the official graphs. Per backbone:
- MobileNetV2: DeepLabv3 head with no atrous ASPP branch (1x1 + image pooling + projection:
  "MobileNet-v2 based models do not employ ASPP and decoder modules"), TF "SAME" padding of the
  strided convs at run time (`backbone_padding="tf_same"`), slim's channel rounding (depth 0.5:
  exactly half widths). The logits' 65x65 (OS 8) or 33x33 (OS 16) grid aligns with 513.
- Xception-65 (`XCEPTION_65_OFFICIAL`): DeepLabv3+ with ASPP rates (6, 12, 18) at OS 16
  ((12, 24, 36) at OS 8) plus image pooling, 256 channels, atrous separable ASPP and decoder
  convs (depthwise-BN-ReLU-pointwise-BN-ReLU, `separable=True`), decoder at output stride 4 on
  the 48-channel projection of entry-flow block 2's second separable conv (P2). Its strided
  convs pad as DeepLab's `fixed_padding` ((1, 1) for a 3x3 kernel at any size, then "VALID"),
  which is `build_xception65`'s only padding: `backbone_padding` stays "keras" (validation
  refuses "tf_same" for it). Batch norms: backbone epsilon 1e-3, head 1e-5, decay 0.9997.

Verified in tensorflow/models (read through the search tool's stored copies, commit prefixes):
- `research/deeplab/core/xception.py` (015d6ed): `xception_arg_scope` sets
  `use_explicit_padding=not use_bounded_activation`, i.e. True for the published models, so
  `separable_conv2d_same` pads with `fixed_padding` + "VALID" at stride 2 (its docstring: native
  "SAME" would misalign even sizes by one pixel); the root `entry_flow/conv1_1` is
  `resnet_utils.conv2d_same` (`research/slim/nets/resnet_utils.py`: the same explicit padding
  + "VALID" at stride 2, "is different when the input's height or width is even" from strided
  "SAME"); the stride-2 `shortcut` is a 1x1 `slim.conv2d` ("SAME" pads nothing for a 1x1
  kernel); batch norm epsilon 1e-3, decay 0.9997;
  ReLU before each separable conv except in exit-flow block 2 (`activation_fn_in_separable_conv`).
- `research/deeplab/core/feature_extractor.py` (08eebbc): `_PREPROCESS_FN["xception_65"]` is
  `_preprocess_zero_mean_unit_range`, (2 / 255) x - 1 (= x / 127.5 - 1, `tf_normalize`);
  `mean_pixel` 127.5 for every model variant; the decoder end point
  `entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise`.
- `research/deeplab/model.py` (05ccaf8): ASPP `aspp0` (1x1), `aspp1..3` through
  `_split_separable_conv2d` when `aspp_with_separable_conv`, `image_pooling` (average pool over
  the whole crop's feature map, 1x1 conv, `resize_bilinear(align_corners=True)`),
  `concat_projection`, depth 256, head batch norm epsilon 1e-5 / decay 0.9997;
  `refine_by_decoder`: 48-channel `feature_projection0`, both inputs resized with
  `align_corners=True` to `scale_dimension(crop, 1/4)` = ceil(crop / 4) (our P2 size: no-op for
  the projection), two 256-channel split separable convs; `logits/semantic` a 1x1 conv with
  bias; `predict_labels(_multi_scale)` resizes the logits to the image with `align_corners=True`.
  Training-only: `concat_projection_dropout` (keep 0.9), which `deeplab_tf.layers.ASPP` lacks.
- `research/deeplab/common.py` (08eebbc): `aspp_with_separable_conv`, `decoder_use_separable_conv`
  and `add_image_level_feature` default True; "When using 'xception_65', we set atrous_rates =
  [6, 12, 18] (output stride 16) and decoder_output_stride = 4".
- `research/deeplab/g3doc/pascal.md`, `cityscapes.md`: eval `--eval_crop_size=513,513` (VOC),
  `1025,2049` (Cityscapes); `input_preprocess.py` pads to the crop with `pad_to_bounding_box(...,
  0, 0, ..., mean_pixel)` (bottom/right).

Numbers: TF DeepLab model zoo, tensorflow/models `research/deeplab/g3doc/model_zoo.md` (PASCAL
VOC 2012 and Cityscapes tables):
- `mobilenetv2_coco_voc_trainaug` (deeplabv3_mnv2_pascal_train_aug_2018_01_29): 75.32% val at
  OS 16, scale 1.0, no flip; 77.33% val at OS 8, scales 0.5:0.25:1.75, flip.
- `mobilenetv2_coco_voc_trainval` (deeplabv3_mnv2_pascal_trainval_2018_01_29, the TF.js file in
  ../shared/data/official_deeplab): 80.25% on **test** (OS 8, multi-scale, flip); trained on val.
- `mobilenetv2_dm05_coco_voc_trainaug` (deeplabv3_mnv2_dm05_pascal_trainaug_2018_10_01): 70.19%
  val at OS 16, scale 1.0; `mobilenetv2_dm05_coco_voc_trainval`: 71.83% on **test** at OS 8.
- `xception_coco_voc_trainaug` (deeplabv3_pascal_train_aug_2018_01_04, COCO-pretrained): 82.20%
  val at OS 16, scale 1.0, no flip; 83.58% val at OS 8, scales 0.5:0.25:1.75, flip.
- `xception_cityscapes_trainfine` (deeplabv3_cityscapes_train_2018_02_06, ImageNet-pretrained):
  78.79% val at OS 16, scale 1.0, no flip; 80.42% val at OS 8, scales 0.75:0.25:1.25, flip.
`paper_miou` holds val numbers only (the test numbers are in the docstrings). Our multi-scale
evaluation pads each scaled image to the crop and resizes with half-pixel centres, where the
official `predict_labels_multi_scale` scales the padded crop with align-corners resizes: the
multi-scale rows' protocol is close, not identical; the single-scale rows' is the official one.

Commands: `python -m deeplab_tf.cli.evaluate --experiment=voc_v3_mnv2_official --model_dir=DIR
--override=data.data_dir=VOC_DIR` with the imported weights in DIR;
`python -m deeplab_tf.cli.evaluate --experiment=voc_v3plus_xception65_official --model_dir=DIR
--checkpoint=ZOO_DIR/model.ckpt --override=data.data_dir=VOC_DIR` (the untarred zoo checkpoint;
add `--output_stride=8 --override=...,eval.scales=(0.5,0.75,1.0,1.25,1.5,1.75),eval.flip=True`
for the 83.58% row).
"""

import dataclasses

from deeplab_tf.config import ModelConfig, derive
from deeplab_tf.pretrained.official_config import official_model_config
from experiments.cityscapes import cityscapes_v3plus_xception65
from experiments.registry import register_experiment
from experiments.voc import v3_base

ZOO_DOC = "TF DeepLab model zoo (tensorflow/models research/deeplab/g3doc/model_zoo.md)"
ZOO = f"{ZOO_DOC}, PASCAL VOC 2012 Table"
CITYSCAPES_ZOO = f"{ZOO_DOC}, Cityscapes Table"
OFFICIAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
VOC_EVAL_CROP = (513, 513)
CITYSCAPES_EVAL_CROP = (1025, 2049)

XCEPTION_65_OFFICIAL = ModelConfig(
    arch="deeplab_v3_plus", backbone="xception65", output_stride=16, atrous_rates=(6, 12, 18), multi_grid=(),
    aspp_filters=256, aspp_image_pooling=True, separable=True, low_level_filters=48, decoder_filters=256,
    align_corners=True, backbone_padding="keras", batch_norm_momentum=0.9997)
"""The official DeepLabv3+ Xception-65 (`model_variant="xception_65"`, `atrous_rates=6,12,18`,
`output_stride=16`, `decoder_output_stride=4`, separable ASPP and decoder), as the module
docstring lists; `backbone_padding="keras"` is Xception-65's own `fixed_padding`, the official one.
Evaluate at output stride 8 with `eval.output_stride=8` (rates doubled to (12, 24, 36))."""


def official_base(depth_multiplier: float = 1.0, output_stride: int = 8):
    """The official MobileNetV2 DeepLabv3 at `depth_multiplier` (1.0: widths rounded to 8; below:
    DeepLab's `divisible_by=1`) and `output_stride`, trained as `voc_v3_mnv2_coco` (train_aug,
    513 crops, COCO-pretrained) and evaluated on 513x513 mean-padded images, single scale."""
    experiment = derive(
        v3_base("mobilenet_v2"),
        train=dict(weight_decay=4e-5, init_from="DeepLabv3 MobileNetV2 trained on MS-COCO (VOC classes)"),
        eval=dict(output_stride=0, pad_to_size=(513, 513)),  # eval.pad_value's default: the mean pixel 127.5
    )
    return dataclasses.replace(experiment, model=official_model_config(depth_multiplier, output_stride))


@register_experiment("voc_v3_mnv2_official")
def voc_v3_mnv2_official():
    """Depth 1.0, OS 8, evaluated as the zoo's 77.33% row (scales 0.5:0.25:1.75, flip). The
    TF.js `deeplabv3_mnv2_pascal_trainval` weights are this network (80.25% on test)."""
    return derive(official_base(1.0, 8), paper_miou=77.33,
                  paper_source=f"{ZOO}: mobilenetv2_coco_voc_trainaug, eval OS 8, scales 0.5:0.25:1.75, flip (val)",
                  eval=dict(scales=OFFICIAL_SCALES, flip=True))


@register_experiment("voc_v3_mnv2_official_os16")
def voc_v3_mnv2_official_os16():
    """Depth 1.0, OS 16, single scale: the zoo's 75.32% row."""
    return derive(official_base(1.0, 16), paper_miou=75.32,
                  paper_source=f"{ZOO}: mobilenetv2_coco_voc_trainaug, eval OS 16, scale 1.0, no flip (val)")


@register_experiment("voc_v3_mnv2_dm05_official")
def voc_v3_mnv2_dm05_official():
    """Depth 0.5, OS 8, single scale: the network of the official TFLite
    `deeplabv3_257_mv_gpu.tflite`. The zoo gives no val number at OS 8, only 71.83% on test
    (mobilenetv2_dm05_coco_voc_trainval); see voc_v3_mnv2_dm05_official_os16 for val."""
    return official_base(0.5, 8)


@register_experiment("voc_v3_mnv2_dm05_official_os16")
def voc_v3_mnv2_dm05_official_os16():
    """Depth 0.5, OS 16, single scale: the zoo's 70.19% row."""
    return derive(official_base(0.5, 16), paper_miou=70.19,
                  paper_source=f"{ZOO}: mobilenetv2_dm05_coco_voc_trainaug, eval OS 16, scale 1.0, no flip (val)")


@register_experiment("voc_v3plus_xception65_official")
def voc_v3plus_xception65_official():
    """The official DeepLabv3+ Xception-65 (`XCEPTION_65_OFFICIAL`), trained as
    `voc_v3plus_xception65` (train_aug, 513 crops, OS 16) from the COCO-pretrained network, and
    evaluated as the zoo's 82.20% row: OS 16, one scale, no flip, 513x513 mean-padded images.
    The zoo's `deeplabv3_pascal_train_aug_2018_01_04` checkpoint is this network; it scores
    83.58% at OS 8, scales 0.5:0.25:1.75 and flip (module docstring for the command)."""
    experiment = derive(
        v3_base("xception65"), paper_miou=82.20,
        paper_source=f"{ZOO}: xception_coco_voc_trainaug, eval OS 16, scale 1.0, no flip (val)",
        train=dict(weight_decay=4e-5, init_from="DeepLabv3+ Xception-65 trained on MS-COCO (VOC classes)"),
        eval=dict(output_stride=0, pad_to_size=VOC_EVAL_CROP),  # eval.pad_value's default: the mean pixel 127.5
    )
    return dataclasses.replace(experiment, model=XCEPTION_65_OFFICIAL)


@register_experiment("cityscapes_v3plus_xception65_official")
def cityscapes_v3plus_xception65_official():
    """The official DeepLabv3+ Xception-65 (`XCEPTION_65_OFFICIAL`) on Cityscapes fine (19
    classes), trained as `cityscapes_v3plus_xception65` (769 crops, OS 16, from ImageNet), and
    evaluated as the zoo's 78.79% row: OS 16, one scale, no flip, the 1024x2048 images padded
    bottom/right with the mean pixel to 1025x2049 (the official eval crop). The zoo's
    `deeplabv3_cityscapes_train_2018_02_06` checkpoint is this network; it scores 80.42% at
    OS 8, scales 0.75:0.25:1.25 and flip."""
    experiment = derive(
        cityscapes_v3plus_xception65(), paper_miou=78.79,
        paper_source=f"{CITYSCAPES_ZOO}: xception_cityscapes_trainfine, eval OS 16, scale 1.0, no flip (val)",
        eval=dict(output_stride=0, pad_to_size=CITYSCAPES_EVAL_CROP),
    )
    return dataclasses.replace(experiment, model=XCEPTION_65_OFFICIAL)
