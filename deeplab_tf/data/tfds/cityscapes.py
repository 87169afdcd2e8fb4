"""Cityscapes through TFDS's own `cityscapes/semantic_segmentation` builder, 19 training classes.

TFDS's builder reads `leftImg8bit_trainvaltest.zip` and `gtFine_trainvaltest.zip` from its manual
dir and stores the `*_gtFine_labelIds.png` values (label ids 0..33) as "segmentation_label".
`TRAIN_IDS` maps those ids to the 19 training ids of cityscapesScripts' `labels.py`; every other
id (void, ego vehicle, parking, caravan, trailer, ..., license plate) becomes 255.
"""

import numpy as np

from deeplab_tf.data.dataset_info import IGNORE_LABEL, DatasetInfo
from deeplab_tf.data.tfds import manual_files

CITYSCAPES_INFO = DatasetInfo(
    name="cityscapes",
    class_names=(
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
        "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle",
    ),
    palette=(
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
        (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
)

LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
"""Cityscapes label id -> training id (cityscapesScripts `labels.py`); all others -> 255."""

TRAIN_IDS = np.full([256], IGNORE_LABEL, np.uint8)
TRAIN_IDS[list(LABEL_ID_TO_TRAIN_ID)] = list(LABEL_ID_TO_TRAIN_ID.values())
TRAIN_IDS.flags.writeable = False

CITYSCAPES_FILES = (
    manual_files.ManualFile(
        description="Cityscapes left 8-bit images, train/val/test",
        archives=("leftImg8bit_trainvaltest.zip",),
        folders=(),
        url="https://www.cityscapes-dataset.com/downloads/ (registration required)",
    ),
    manual_files.ManualFile(
        description="Cityscapes fine annotations (*_gtFine_labelIds.png), train/val/test",
        archives=("gtFine_trainvaltest.zip",),
        folders=(),
        url="https://www.cityscapes-dataset.com/downloads/ (registration required)",
    ),
)
"""The zips TFDS's builder needs in its manual dir (it reads the zips, not extracted folders)."""
