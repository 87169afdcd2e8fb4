"""DeepLab backbones: Keras Applications models and Xception-65 as feature extractors."""

from deeplab_tf.backbones.imagenet_weights import load_weights_by_name
from deeplab_tf.backbones.keras_applications import KerasApplication
from deeplab_tf.backbones.normalization import NORMALIZERS
from deeplab_tf.backbones.output_stride import OUTPUT_STRIDES
from deeplab_tf.backbones.output_stride import dilate_to_output_stride
from deeplab_tf.backbones.output_stride import dilation_plan
from deeplab_tf.backbones.registry import BACKBONE_NAMES
from deeplab_tf.backbones.registry import BACKBONES
from deeplab_tf.backbones.registry import CustomBackbone
from deeplab_tf.backbones.registry import build_backbone
from deeplab_tf.backbones.registry import feature_channels
from deeplab_tf.backbones.registry import get_backbone_spec
from deeplab_tf.backbones.registry import get_normalizer
from deeplab_tf.backbones.registry import normalize
from deeplab_tf.backbones.tf_padding import PADDINGS
from deeplab_tf.backbones.tf_padding import tf_same_padding
from deeplab_tf.backbones.xception65 import build_xception65
