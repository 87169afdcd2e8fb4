"""The `python -m deeplab_tf.cli.<command>` entry points and the flags they share; the only
package that imports `experiments/`. Importing it turns oneDNN's TensorFlow ops on where TensorFlow
leaves them off (`deeplab_tf.onednn_ops`), before any command imports TensorFlow."""

from deeplab_tf import onednn_ops

onednn_ops.turn_on_where_off()
