"""Custom Keras layers of deeplab_tf."""

from deeplab_tf.layers.atrous_conv import ATROUS_IMPLEMENTATIONS
from deeplab_tf.layers.atrous_conv import AtrousConv2D
from deeplab_tf.layers.atrous_conv import AtrousDepthwiseConv2D
from deeplab_tf.layers.atrous_conv import atrous_conv2d
from deeplab_tf.layers.atrous_conv import atrous_depthwise_conv2d
from deeplab_tf.layers.aspp import ASPP
from deeplab_tf.layers.conv_bn import conv_bn_relu
from deeplab_tf.layers.deeplab_v3_plus_decoder import DeepLabV3PlusDecoder
from deeplab_tf.layers.resize import ResizeToMatch
