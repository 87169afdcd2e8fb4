"""Keras Applications backbones re-purposed as DeepLab feature extractors."""

from deeplab_tf.backbones.keras_applications import BACKBONES
from deeplab_tf.backbones.keras_applications import BackboneSpec
from deeplab_tf.backbones.keras_applications import build_backbone
from deeplab_tf.backbones.keras_applications import feature_channels
from deeplab_tf.backbones.keras_applications import get_backbone_spec
from deeplab_tf.backbones.keras_applications import get_normalizer
from deeplab_tf.backbones.keras_applications import normalize
from deeplab_tf.backbones.normalization import NORMALIZERS
from deeplab_tf.backbones.output_stride import OUTPUT_STRIDES
from deeplab_tf.backbones.output_stride import dilate_to_output_stride
from deeplab_tf.backbones.output_stride import dilation_plan
