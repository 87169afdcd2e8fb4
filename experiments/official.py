"""The official DeepLabv3 MobileNetV2 networks of tensorflow/models `research/deeplab`, exactly as
published, so their weights (TF.js / TFLite / TF1 checkpoints, `deeplab_tf.pretrained`) load
into `build_model` and compute the official graphs' numbers.

What makes them the official networks rather than `voc_v3_mnv2_coco`'s Keras conventions:
DeepLabv3 head with no atrous ASPP branch (1x1 + image pooling + projection: "MobileNet-v2 based
models do not employ ASPP and decoder modules"), TF1's align-corners resizes, TF "SAME" padding
of the strided convs at run time, slim's channel rounding (depth 0.5: exactly half widths), the
x / 127.5 - 1 input scaling of MobileNetV2, and, at evaluation and export, every image padded
bottom/right to 513x513 with the mean pixel 127.5 (`eval.pad_to_size`, the official graphs'
513 crop); the logits' 65x65 (OS 8) or 33x33 (OS 16) grid then aligns with the padded image.

Numbers: TF DeepLab model zoo, tensorflow/models `research/deeplab/g3doc/model_zoo.md` (PASCAL
VOC 2012 table), all COCO-pretrained:
- `mobilenetv2_coco_voc_trainaug` (deeplabv3_mnv2_pascal_train_aug_2018_01_29): 75.32% val at
  OS 16, scale 1.0, no flip; 77.33% val at OS 8, scales 0.5:0.25:1.75, flip.
- `mobilenetv2_coco_voc_trainval` (deeplabv3_mnv2_pascal_trainval_2018_01_29, the TF.js file in
  ../shared/data/official_deeplab): 80.25% on **test** (OS 8, multi-scale, flip); trained on val.
- `mobilenetv2_dm05_coco_voc_trainaug` (deeplabv3_mnv2_dm05_pascal_trainaug_2018_10_01): 70.19%
  val at OS 16, scale 1.0; `mobilenetv2_dm05_coco_voc_trainval`: 71.83% on **test** at OS 8.
`paper_miou` holds val numbers only (the test numbers are in the docstrings).

Command: `python -m deeplab_tf.cli.evaluate --experiment=voc_v3_mnv2_official --model_dir=DIR
--override=data.data_dir=VOC_DIR` with the imported weights in DIR.
"""

import dataclasses

from deeplab_tf.config import derive
from deeplab_tf.pretrained.official_config import official_model_config
from experiments.registry import register_experiment
from experiments.voc import v3_base

ZOO = "TF DeepLab model zoo (tensorflow/models research/deeplab/g3doc/model_zoo.md), PASCAL VOC 2012 Table"
OFFICIAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


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
