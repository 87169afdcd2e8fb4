"""DeepLab models built from configs."""

from deeplab_tf.models.builder import ARCHITECTURES, BuiltModel, build_model
from deeplab_tf.models.deeplab import build_deeplab
from deeplab_tf.models.deeplab_v2 import build_deeplab_v2
from deeplab_tf.models.multi_scale import build_multi_scale

__all__ = ["ARCHITECTURES", "BuiltModel", "build_deeplab", "build_deeplab_v2", "build_model", "build_multi_scale"]
