"""Data: example sources (`synthetic_shapes`, `camvid_folder`, TFDS datasets), augmentation, tf.data pipelines.

Importing this package registers the deeplab-tf TFDS builders (`deeplab_tf.data.tfds`).
"""

from deeplab_tf.data.augment import pad_to_size, random_crop, random_flip_left_right, random_scale
from deeplab_tf.data.camvid_folder import CAMVID_INFO, CamVidFolder
from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo
from deeplab_tf.data.pipeline import build_eval_dataset, build_train_dataset
from deeplab_tf.data.sources import SOURCES, SourceSpec, dataset_info, get_source
from deeplab_tf.data.synthetic_shapes import SYNTHETIC_INFO, SyntheticShapes
from deeplab_tf.data.tfds_source import TfdsDataset, TfdsSource

__all__ = [
    "CAMVID_INFO",
    "IGNORE_LABEL",
    "SOURCES",
    "SYNTHETIC_INFO",
    "CamVidFolder",
    "DatasetInfo",
    "SourceSpec",
    "SyntheticShapes",
    "TfdsDataset",
    "TfdsSource",
    "build_eval_dataset",
    "dataset_info",
    "build_train_dataset",
    "get_source",
    "pad_to_size",
    "random_crop",
    "random_flip_left_right",
    "random_scale",
]
