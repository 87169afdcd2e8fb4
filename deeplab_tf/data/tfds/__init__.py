"""TFDS builders for the DeepLab datasets TFDS lacks; importing this package registers them.

Builders (all read upstream files from the TFDS `manual_dir`, never download):
`voc2012_segmentation` (train / val / train_aug), `pascal_context` (train / val),
`pascal_person_part` (train / val), `camvid` (train / val / test when present), `ade20k`
(train / val). Cityscapes uses TFDS's own `cityscapes/semantic_segmentation` builder
(`deeplab_tf.data.tfds.cityscapes` holds its 19-class mapping).

Example:
```python
import tensorflow_datasets as tfds
import deeplab_tf.data.tfds  # registers the builders

builder = tfds.builder("voc2012_segmentation")
builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir="/data/voc"))
dataset = builder.as_dataset(split="train_aug")  # {"image", "label" [H, W, 1], "name"}
```
Or from the shell: `python -m deeplab_tf.cli.prepare_data --dataset=voc2012_segmentation
--manual_dir=/data/voc`.
"""

from deeplab_tf.data.tfds.ade20k import ADE20K_INFO, Ade20k
from deeplab_tf.data.tfds.camvid import CAMVID_TFDS_INFO, Camvid
from deeplab_tf.data.tfds.cityscapes import CITYSCAPES_INFO
from deeplab_tf.data.tfds.pascal_context import CONTEXT_INFO, PascalContext
from deeplab_tf.data.tfds.pascal_person_part import PERSON_PART_INFO, PascalPersonPart
from deeplab_tf.data.tfds.segmentation_builder import SegmentationBuilder, info_from_metadata
from deeplab_tf.data.tfds.voc2012_segmentation import VOC_INFO, Voc2012Segmentation

BUILDERS = {
    builder.name: builder
    for builder in (Voc2012Segmentation, PascalContext, PascalPersonPart, Camvid, Ade20k)
}
"""Name -> builder class of every builder this package registers with TFDS."""

__all__ = [
    "ADE20K_INFO",
    "BUILDERS",
    "CAMVID_TFDS_INFO",
    "CITYSCAPES_INFO",
    "CONTEXT_INFO",
    "PERSON_PART_INFO",
    "VOC_INFO",
    "Ade20k",
    "Camvid",
    "PascalContext",
    "PascalPersonPart",
    "SegmentationBuilder",
    "Voc2012Segmentation",
    "info_from_metadata",
]
