"""Readers of the official DeepLab weights and runners of the official models.

One module per format, each returning a `source_tensors.SourceTensors` (name -> np.ndarray):
`tfjs_graph` (TF.js graph model), `tflite_file` (float TFLite flatbuffer), `tf1_checkpoint`
(TF1 `model.ckpt-N`), `frozen_graph` (`frozen_inference_graph.pb`, and the GraphDef runner
shared with the TF.js path).
"""
