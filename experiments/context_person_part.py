"""PASCAL-Context (59 classes + background) and PASCAL-Person-Part (background + 6 parts)
experiments: the DeepLab v2 ResNet-101 models of v2 Tables 6 and 7, and VGG-16 LargeFOV.
Paper numbers are val mIoU from DeepLab v2 (arXiv:1606.00915) Sec. 4.2-4.3, Tables 6 and 7.

Data: `pascal_context` / `pascal_person_part` TFDS builders from the manual files
(`--override=data.data_dir=DIR`). Recipes as the VOC family (experiments/voc.py); v2 gives no
separate crop, batch or iteration count for these datasets.
Command: `python -m deeplab_tf.cli.train --experiment=context_r101_v2_aspp_crf --model_dir=DIR
--override=data.data_dir=DIR,train.init_checkpoint=COCO_CKPT`.
"""

from deeplab_tf.config import Experiment, derive
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


def person_part_base() -> Experiment:
    """DeepLab v2 ResNet-101 on PASCAL-Person-Part, as v2 Sec. 4.3 (arXiv:1606.00915) describes it:
    "we mainly focus on the effect of repurposing ResNet-101 for DeepLab", one plain classifier
    (no LargeFOV, no ASPP: "we do not observe any improvement when adopting either LargeFOV or ASPP
    on this dataset"), training on the 1,716 person images and validating on 1,817. The text names
    no scale augmentation for this dataset (it lists MSC, COCO, LargeFOV/ASPP and CRF), so none is
    used; Table 7 has an Aug column, but the copies of the paper read here lost its check marks,
    so the column could not be verified. Crop, batch size, iterations and learning rate are not
    stated for Person-Part: they are the VOC ResNet-101 recipe (`resnet_v2_base`), unverified.
    Table 7's single-scale row ("With ResNet-101, DeepLab alone yields 58.9%") is not registered:
    its 7-class network without MSC would add one more ResNet-101 build to the all-experiments test."""
    return derive(resnet_v2_base(), data=PERSON_PART, paper_source="DeepLab v2 Table 7 (val)")


@register_experiment("person_part_r101_v2_msc")
def person_part_r101_v2_msc():
    """v2 Sec. 4.3: "Incorporating multi-scale inputs and fusion by max-pooling further improves
    performance to 63.1%"."""
    return derive(person_part_base(), paper_miou=63.10, model=MSC)


@register_experiment("person_part_r101_v2_msc_coco")
def person_part_r101_v2_msc_coco():
    """v2 Sec. 4.3: "Additionally pretraining the model on MS-COCO yields another 1.3%
    improvement" (64.40 in Table 7)."""
    return derive(person_part_r101_v2_msc(), paper_miou=64.40, train=COCO)


@register_experiment("person_part_r101_v2_crf")
def person_part_r101_v2_crf():
    """ResNet-101 + MSC + COCO + CRF: the v2 paper's final Person-Part model. v2 Sec. 4.3:
    "Employing the dense CRF to post process our final output substantially outperforms the
    concurrent work [97] by 4.78%", i.e. 64.94 against Graph LSTM's 60.16 (Table 7)."""
    return derive(person_part_r101_v2_msc_coco(), paper_miou=64.94,
                  paper_source="DeepLab v2 Table 7 (MSC + COCO + CRF, val)", eval=dict(crf=True))
