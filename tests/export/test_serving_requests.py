"""The export as TF Serving drives it: REST JSON and gRPC PredictRequest bodies, bad inputs at
serving time, and concurrent requests against one loaded model."""

import base64
import importlib.util
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from export.serving import IMAGE_FEATURE_KEY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def loaded(exported_demo):
    return tf.saved_model.load(str(exported_demo[2]))


def png(image) -> bytes:
    return tf.io.encode_png(image).numpy()


def example(data: bytes) -> bytes:
    feature = {IMAGE_FEATURE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def rest_to_tensors(body: dict, signature) -> dict:
    """TF Serving's JSON mapping for a REST `predict` body in row format ("instances"): each
    instance is {input name: value} or, for a single-input signature, the bare value; a
    {"b64": text} value is base64-decoded into a tf.string element; rows are batched."""
    specs = signature.structured_input_signature[1]

    def value(item):
        return base64.b64decode(item["b64"]) if isinstance(item, dict) and set(item) == {"b64"} else item

    rows = [row if isinstance(row, dict) and "b64" not in row else {next(iter(specs)): row} for row in body["instances"]]
    return {name: tf.constant([value(row[name]) for row in rows], dtype=spec.dtype) for name, spec in specs.items()}


def rest_response(outputs: dict) -> dict:
    """TF Serving's row-format reply: one list per instance, or one dict per instance for several outputs."""
    values = {name: tensor.numpy().tolist() for name, tensor in outputs.items()}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [dict(zip(values, row)) for row in zip(*values.values())]}


def test_rest_predict_bodies(loaded, camvid_crops):
    direct = loaded.signatures["serving_image_tensor"](images=tf.constant(camvid_crops))
    encoded = [png(image) for image in camvid_crops]
    bodies = {
        "serving_default": [{"b64": base64.b64encode(data).decode()} for data in encoded],
        "serving_tf_example": [{"examples": {"b64": base64.b64encode(example(data)).decode()}} for data in encoded],
        "serving_image_tensor": camvid_crops.tolist(),
    }
    for name, instances in bodies.items():
        body = json.loads(json.dumps({"signature_name": name, "instances": instances}))
        signature = loaded.signatures[body["signature_name"]]
        reply = json.loads(json.dumps(rest_response(signature(**rest_to_tensors(body, signature)))))
        rows = reply["predictions"]
        labels = [row["labels"] for row in rows] if name == "serving_image_tensor" else rows
        np.testing.assert_array_equal(np.array(labels), direct["labels"].numpy(), err_msg=name)


def test_grpc_predict_request_round_trip(loaded, camvid_crops):
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "deeplab", "serving_default"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([png(image) for image in camvid_crops], dtype=tf.string))
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    signature = loaded.signatures[received.model_spec.signature_name]
    outputs = signature(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in received.inputs.items()})
    response = predict_pb2.PredictResponse()
    for name, tensor in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    labels = tf.make_ndarray(predict_pb2.PredictResponse.FromString(response.SerializeToString()).outputs["labels"])
    direct = loaded.signatures["serving_image_tensor"](images=tf.constant(camvid_crops))["labels"].numpy()
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, direct)


def test_bad_inputs_fail_clearly_or_give_defined_results(loaded, camvid_crops):
    serve = loaded.signatures["serving_default"]

    def labels(*encoded):
        return serve(image_bytes=tf.constant(list(encoded)))["labels"].numpy()

    for data, message in ((b"not an image", r"Unknown image file format: image_bytes\[0\] \(12 bytes\)"),
                          (b"", r"image_bytes\[0\] \(0 bytes\) is not a JPEG, PNG, GIF or BMP image")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            labels(data)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no image"):
        serve(image_bytes=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"same height and width: image_bytes\[0\] is 8 x 8, image_bytes\[1\] is 8 x 12"):
        labels(png(np.zeros((8, 8, 3), np.uint8)), png(np.zeros((8, 12, 3), np.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"request too large: 1 image\(s\) of 6000 x 8000 .* at most max_pixels = 8388608 per request"):
        labels(png(np.zeros((6000, 8000, 1), np.uint8)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=IMAGE_FEATURE_KEY):
        loaded.signatures["serving_tf_example"](examples=tf.constant([tf.train.Example().SerializeToString()]))

    image = camvid_crops[0]
    rgb = labels(png(image))
    alpha = np.concatenate([image, np.full(image.shape[:2] + (1,), 77, np.uint8)], axis=-1)
    np.testing.assert_array_equal(labels(png(alpha)), rgb)  # alpha dropped
    np.testing.assert_array_equal(labels(png(image.astype(np.uint16) * 257)), rgb)  # 16-bit scaled to 8
    gray = image[:, :, :1]
    np.testing.assert_array_equal(labels(png(gray)), labels(png(np.repeat(gray, 3, axis=-1))))  # gray repeated
    # An image below MIN_SIZE runs padded to it and is answered at its own size
    # (test_serving_input_checks.py checks it with Eigen's kernels too).
    assert labels(png(np.full((1, 1, 3), 200, np.uint8))).shape == (1, 1, 1)


def test_concurrent_requests_match_sequential_ones(loaded, camvid_dir):
    spec = importlib.util.spec_from_file_location("serving_load", os.path.join(REPO, "bench", "serving_load.py"))
    serving_load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serving_load)
    signature = loaded.signatures["serving_default"]
    requests = serving_load.camvid_requests(camvid_dir, count=2, batch=1)
    result = serving_load.run_load(lambda request: signature(image_bytes=request)["labels"].numpy(), requests, 4, 5)
    assert result["mismatches"] == 0 and len(result["latencies"]) == 20 and result["images"] == 20
