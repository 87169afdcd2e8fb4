"""What a segmentation dataset is: its classes, their display colours and the ignore value."""

import dataclasses

IGNORE_LABEL = 255
"""Label value of pixels that count in neither the loss nor the metrics (void, padding)."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Args:
        name: str. Dataset name, e.g. "camvid_folder".
        class_names: tuple of str. One name per class, in label-index order.
        palette: tuple of (r, g, b) int tuples. One display colour per class, same order.
        ignore_label: int. Label value to ignore. Defaults to `IGNORE_LABEL` (255).
    """

    name: str
    class_names: tuple
    palette: tuple
    ignore_label: int = IGNORE_LABEL

    def __post_init__(self):
        if len(self.palette) != len(self.class_names):
            raise ValueError(
                f"DatasetInfo {self.name!r}: {len(self.class_names)} class names but "
                f"{len(self.palette)} palette colours"
            )

    @property
    def num_classes(self) -> int:
        """Returns the number of classes (ignore label excluded)."""
        return len(self.class_names)
