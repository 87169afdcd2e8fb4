"""deeplab-tf: the DeepLab family of semantic segmentation models in TensorFlow / Keras 3."""

__version__ = "0.1.0"
