"""PASCAL-Context (59 classes + background) and PASCAL-Person-Part (background + 6 parts)
experiments: the DeepLab v2 ResNet-101 models of v2 Tables 6 and 7, and VGG-16 LargeFOV.
Paper numbers are val mIoU from DeepLab v2 (arXiv:1606.00915) Sec. 4.2-4.3, Tables 6 and 7.

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
    """VGG-16 DeepLab-LargeFOV on PASCAL-Context (v2: 37.6 before and 39.6 after CRF)."""
    return derive(vgg_base(), paper_miou=39.6, paper_source="DeepLab v2 Table 6 (VGG-16 LargeFOV, after CRF, val)",
                  data=CONTEXT)


@register_experiment("context_r101_v2_aspp_crf")
def context_r101_v2_aspp_crf():
    """ResNet-101 + MSC + COCO + Aug + ASPP + CRF: the v2 paper's final PASCAL-Context model."""
    return derive(resnet_v2_base(), paper_miou=45.7, paper_source="DeepLab v2 Table 6 (val)",
                  model=dict(atrous_rates=(6, 12, 18, 24), **MSC), train=COCO, data=dict(CONTEXT, **AUG),
                  eval=dict(crf=True))


@register_experiment("person_part_largefov")
def person_part_largefov():
    """VGG-16 DeepLab-LargeFOV on PASCAL-Person-Part. v2 prints no number for it (Sec. 4.3 only
    says ResNet-101 DeepLab beats it by about 7%)."""
    return derive(vgg_base(), data=PERSON_PART)


@register_experiment("person_part_r101_v2_crf")
def person_part_r101_v2_crf():
    """ResNet-101 + MSC + COCO + CRF: the v2 paper's final Person-Part model. v2 Sec. 4.3: ResNet-101
    alone 58.90, + MSC 63.10, + COCO 64.40; "we do not observe any improvement when adopting
    either LargeFOV or ASPP" (62.18 / 62.76), and the dense CRF on the final output gives 64.94
    (4.78 over Graph LSTM's 60.16). So one plain 3x3 classifier, no LargeFOV; the text names no
    scale augmentation for this dataset, so none is used."""
    return derive(resnet_v2_base(), paper_miou=64.94, paper_source="DeepLab v2 Table 7 (MSC + COCO + CRF, val)",
                  model=MSC, train=COCO, data=PERSON_PART, eval=dict(crf=True))
