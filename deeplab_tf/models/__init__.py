"""DeepLab models built from configs."""

from deeplab_tf.models.deeplab import ARCHITECTURES, build_deeplab

__all__ = ["ARCHITECTURES", "build_deeplab"]
