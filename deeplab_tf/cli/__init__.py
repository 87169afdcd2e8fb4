"""The `python -m deeplab_tf.cli.<command>` entry points and the flags they share; the only
package that imports `experiments/`."""
