"""SavedModel and TFLite export (`python -m export.export_saved_model`, `export.export_tflite`).
Importing it turns oneDNN's TensorFlow ops on where TensorFlow leaves them off
(`deeplab_tf.onednn_ops`), before an exporter imports TensorFlow."""

from deeplab_tf import onednn_ops

onednn_ops.turn_on_where_off()
