"""Data: example sources (`synthetic_shapes`, `camvid_folder`), augmentation, tf.data pipelines."""

from deeplab_tf.data.augment import pad_to_size, random_crop, random_flip_left_right, random_scale
from deeplab_tf.data.camvid_folder import CAMVID_INFO, CamVidFolder
from deeplab_tf.data.dataset_info import IGNORE_LABEL, MEAN_RGB, DatasetInfo
from deeplab_tf.data.pipeline import build_eval_dataset, build_train_dataset
from deeplab_tf.data.sources import SOURCES, get_source
from deeplab_tf.data.synthetic_shapes import SYNTHETIC_INFO, SyntheticShapes

__all__ = [
    "CAMVID_INFO",
    "IGNORE_LABEL",
    "MEAN_RGB",
    "SOURCES",
    "SYNTHETIC_INFO",
    "CamVidFolder",
    "DatasetInfo",
    "SyntheticShapes",
    "build_eval_dataset",
    "build_train_dataset",
    "get_source",
    "pad_to_size",
    "random_crop",
    "random_flip_left_right",
    "random_scale",
]
