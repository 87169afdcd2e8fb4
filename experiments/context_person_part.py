"""PASCAL-Context (59 classes + background) and PASCAL-Person-Part (background + 6 parts)
experiments: the DeepLab v2 ResNet-101 models of v2 Tables 6 and 7, and VGG-16 LargeFOV.

Data: `pascal_context` / `pascal_person_part` TFDS builders from the manual files
(`--override=data.data_dir=DIR`). Recipes as the VOC family (experiments/voc.py).
Command: `python -m deeplab_tf.train --experiment=context_r101_v2_aspp_crf --model_dir=DIR
--override=data.data_dir=DIR,train.init_checkpoint=COCO_CKPT`.
"""

from deeplab_tf.config import derive
from experiments.registry import register_experiment
from experiments.voc import AUG, COCO, MSC, resnet_v2_base, vgg_base

CONTEXT = dict(dataset="pascal_context", train_split="train", eval_split="val")
PERSON_PART = dict(dataset="pascal_person_part", train_split="train", eval_split="val")


@register_experiment("context_largefov")
def context_largefov():
    """VGG-16 DeepLab-LargeFOV on PASCAL-Context."""
    return derive(vgg_base(), data=CONTEXT)


@register_experiment("context_r101_v2_aspp_crf")
def context_r101_v2_aspp_crf():
    """ResNet-101 + MSC + COCO + Aug + ASPP + CRF: the v2 paper's final PASCAL-Context model."""
    return derive(resnet_v2_base(), paper_miou=45.7, paper_source="DeepLab v2 Table 6 (val)",
                  model=dict(atrous_rates=(6, 12, 18, 24), **MSC), train=COCO, data=dict(CONTEXT, **AUG),
                  eval=dict(crf=True))


@register_experiment("person_part_largefov")
def person_part_largefov():
    """VGG-16 DeepLab-LargeFOV on PASCAL-Person-Part."""
    return derive(vgg_base(), data=PERSON_PART)


@register_experiment("person_part_r101_v2_crf")
def person_part_r101_v2_crf():
    """ResNet-101 + MSC + COCO + Aug + LargeFOV + CRF: the v2 paper's final Person-Part model
    (v2 reports ASPP did not help on this dataset)."""
    return derive(resnet_v2_base(), paper_miou=64.94, paper_source="DeepLab v2 Table 7 (val)",
                  model=dict(atrous_rates=(12,), **MSC), train=COCO, data=dict(PERSON_PART, **AUG),
                  eval=dict(crf=True))
