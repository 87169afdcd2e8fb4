"""Cityscapes (19 training classes, everything else ignored) experiments.

Data: TFDS's own `cityscapes` builder (`semantic_segmentation` config) read through
`data.dataset="cityscapes"`; the Cityscapes archives go in its manual dir.
DeepLab v2 evaluates the 1024x2048 images in overlapping 513x513 windows (eval.tile_size);
the DeepLabv3+ rows evaluate whole images, as its reference implementation does.
Command: `python -m deeplab_tf.cli.train --experiment=cityscapes_v3plus_xception65 --model_dir=DIR`.
"""

from deeplab_tf.config import derive
from experiments.registry import register_experiment
from experiments.voc import AUG, resnet_v2_base, v3_base

CITYSCAPES = dict(dataset="cityscapes", train_split="train", eval_split="val")


@register_experiment("cityscapes_r101_v2_aspp_crf")
def cityscapes_r101_v2_aspp_crf():
    """DeepLab v2 ResNet-101 + Aug + ASPP + CRF on full-resolution Cityscapes (no MSC, no COCO),
    trained on train only. v2 Table 9 (val): 66.6 alone, 69.2 + LargeFOV, 70.4 + ASPP, 71.0 + Aug,
    71.4 + CRF; the same model scores 70.4 on the test server (Table 8). This experiment
    evaluates val, so it records 71.4. The crop size is not stated in the paper; 513 is used."""
    return derive(resnet_v2_base(), paper_miou=71.4,
                  paper_source="DeepLab v2 Table 9 (Full + Aug + ASPP + CRF, val; test 70.4 in Table 8)",
                  model=dict(atrous_rates=(6, 12, 18, 24)), data=dict(CITYSCAPES, crop_size=(513, 513), **AUG),
                  eval=dict(crf=True, tile_size=(513, 513), tile_overlap=128))


@register_experiment("cityscapes_v3plus_xception65")
def cityscapes_v3plus_xception65():
    """DeepLabv3+ Xception-65 on Cityscapes fine: 769 crops, batch 8, poly lr from 0.01 for 90K
    iterations, output stride 16 (the reference implementation's Cityscapes recipe). v3+ Table 7(a)
    gives 78.79 on val for X-65 + decoder + ASPP + image-level features trained on train_fine,
    as does the reference model zoo (xception65_cityscapes_trainfine, eval OS 16, one scale).
    The paper's 82.1 is the test set with coarse data and is not comparable."""
    return derive(v3_base("xception65"), paper_miou=78.79,
                  paper_source="DeepLabv3+ Table 7(a) (X-65, decoder, ASPP, image pooling; val, train_fine)",
                  model=dict(arch="deeplab_v3_plus", multi_grid=(), separable=True),
                  data=dict(CITYSCAPES, crop_size=(769, 769), min_scale=0.5, max_scale=2.0),
                  train=dict(steps=90000, batch_size=8, base_learning_rate=0.01, weight_decay=4e-5),
                  eval=dict(output_stride=0))


@register_experiment("cityscapes_v3plus_mnv2")
def cityscapes_v3plus_mnv2():
    """MobileNetV2 DeepLabv3+ on Cityscapes, same recipe as cityscapes_v3plus_xception65. No paper
    number: the reference model zoo's MobileNetV2 Cityscapes model (70.71 val) is COCO-pretrained
    and has neither ASPP nor decoder."""
    return derive(cityscapes_v3plus_xception65(), paper_miou=0.0, paper_source="",
                  model=dict(backbone="mobilenet_v2", separable=False))
