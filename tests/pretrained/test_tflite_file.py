import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.pretrained.source_tensors import MissingTensorError, SourceFileError
from deeplab_tf.pretrained.tflite_file import read_tflite_model, run_tflite

RNG = np.random.default_rng(0)


def _convert(function, quantize=False) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def conv_same(x, kernel, stride=1, dilation=1, depthwise=False):
    """NumPy reference of TF's SAME convolution. x: [H, W, C]; kernel: [kh, kw, C, out] (for
    depthwise: [kh, kw, C, 1]). Returns [ceil(H/stride), ceil(W/stride), out or C] float64."""
    kh, kw = kernel.shape[:2]
    out_h, out_w = -(-x.shape[0] // stride), -(-x.shape[1] // stride)
    pads = []
    for size, k, out in ((x.shape[0], kh, out_h), (x.shape[1], kw, out_w)):
        total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    padded = np.pad(x.astype(np.float64), (*pads, (0, 0)))
    result = 0.0
    for i in range(kh):
        for j in range(kw):
            window = padded[i * dilation :: stride, j * dilation :: stride][:out_h, :out_w]
            result = result + (window * kernel[i, j, :, 0] if depthwise else window @ kernel[i, j])
    return result


def test_reads_a_converted_model_and_runs_it(tmp_path):
    kernel = RNG.normal(size=(3, 3, 3, 4)).astype(np.float32)
    biases = RNG.normal(size=4).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 9, 9, 3], tf.float32)])
    def model(x):
        return tf.nn.relu6(tf.nn.conv2d(x, kernel, 2, "SAME", dilations=1) + biases)

    path = tmp_path / "tiny.tflite"
    path.write_bytes(_convert(model))
    tflite = read_tflite_model(str(path))
    (op,) = tflite.ops
    assert op.opcode == "CONV_2D" and op.inputs[0] == tflite.inputs[0] and op.outputs == tflite.outputs
    assert op.options["padding"] == "SAME" and op.options["stride_h"] == op.options["stride_w"] == 2
    assert op.options["fused_activation_function"] == "RELU6"
    np.testing.assert_array_equal(tflite.weights[op.inputs[1]], kernel.transpose(3, 0, 1, 2))  # TFLite: OHWI
    np.testing.assert_array_equal(tflite.weights[op.inputs[2]], biases)
    x = RNG.normal(size=(1, 9, 9, 3)).astype(np.float32)
    (output,) = run_tflite(str(path), x).values()
    np.testing.assert_allclose(output[0], np.clip(conv_same(x[0], kernel, stride=2) + biases, 0, 6), atol=1e-5)


def test_quantized_constants_are_refused_naming_the_tensor(tmp_path):
    kernel = RNG.normal(size=(1, 1, 64, 64)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 64], tf.float32)])
    def model(x):
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    path = tmp_path / "quantized.tflite"
    path.write_bytes(_convert(model, quantize=True))
    with pytest.raises(SourceFileError, match=r"constant tensor '.*' of .*quantized.tflite has type INT8; only flo"):
        read_tflite_model(str(path))


def test_run_refuses_a_model_with_two_inputs(tmp_path):
    spec = tf.TensorSpec([1, 2], tf.float32)

    @tf.function(input_signature=[spec, spec])
    def model(a, b):
        return a + b

    path = tmp_path / "two_inputs.tflite"
    path.write_bytes(_convert(model))
    with pytest.raises(ValueError, match=r"two_inputs.tflite has 2 inputs; run_tflite feeds single-input models"):
        run_tflite(str(path), np.zeros((1, 2), np.float32))


def test_missing_or_foreign_file_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceFileError, match=r"no TFLite file at .*none.tflite"):
        read_tflite_model(str(tmp_path / "none.tflite"))
    foreign = tmp_path / "model.json"
    foreign.write_text('{"modelTopology": {}}')
    with pytest.raises(SourceFileError, match=r"model.json is not a TFLite flatbuffer \(no 'TFL3' identifier, 21"):
        read_tflite_model(str(foreign))


# The official deeplabv3_257_mv_gpu.tflite (MobileNetV2 depth 0.5, output stride 8, 21 VOC classes).


@pytest.fixture(scope="module")
def official(tflite_path):
    return read_tflite_model(tflite_path)


@pytest.fixture(scope="module")
def bird_input(bird):
    """(the bird resized to 257x257 and normalised to float32 [1, 257, 257, 3], its mask 257x257)."""
    image, mask = bird
    resized = np.asarray(Image.fromarray(image).resize((257, 257), Image.BILINEAR), np.float32)
    return ((resized - 127.5) / 127.5)[None], np.asarray(Image.fromarray(mask).resize((257, 257), Image.NEAREST))


def _reference_interpreter(path):
    interpreter = tf.lite.Interpreter(
        model_path=path,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    return interpreter


@pytest.mark.filterwarnings(r"ignore:.*tf\.lite\.Interpreter is deprecated")
def test_official_constants_and_ops_are_those_the_interpreter_uses(official, tflite_path):
    assert official.inputs == ("sub_7",) and official.outputs == ("ResizeBilinear_3",)
    assert len(official.weights) == 113
    assert sum(v.size for v in official.weights.values() if v.dtype == np.float32) == 688_357  # as published
    interpreter = _reference_interpreter(tflite_path)
    details = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    for name, value in official.weights.items():
        np.testing.assert_array_equal(value, interpreter.get_tensor(details[name]), err_msg=name)
    names = {index: name for name, index in details.items()}
    reference_ops = interpreter._get_ops_details()
    assert [op.opcode for op in official.ops] == [op["op_name"] for op in reference_ops]
    for op, reference in zip(official.ops, reference_ops):
        assert op.inputs == tuple(names[i] for i in reference["inputs"])
        assert op.outputs == tuple(names[i] for i in reference["outputs"])


def test_official_op_options(official):
    ops = {op.outputs[0]: op for op in official.ops}
    assert ops["MobilenetV2/Conv/Relu6"].options["stride_h"] == 2
    assert ops["MobilenetV2/expanded_conv_7/depthwise/Relu6"].options["dilation_h_factor"] == 2
    assert ops["MobilenetV2/expanded_conv_14/depthwise/Relu6"].options["dilation_w_factor"] == 4
    assert ops["AvgPool2D/AvgPool"].options["filter_height"] == 33
    resize = ops["ResizeBilinear_3"]
    assert resize.opcode == "RESIZE_BILINEAR" and resize.options["align_corners"] is True
    assert official.weights[resize.inputs[1]].tolist() == [257, 257]


def test_official_model_segments_the_bird(tflite_path, bird_input):
    x, mask = bird_input
    logits = run_tflite(tflite_path, x)["ResizeBilinear_3"]
    assert logits.shape == (1, 257, 257, 21) and logits.dtype == np.float32
    labels = logits[0].argmax(-1)
    assert (labels == mask).mean() >= 0.95
    assert (labels[mask == 3] == 3).mean() >= 0.9


def test_numpy_layers_from_the_read_weights_reproduce_the_interpreter(official, tflite_path, bird_input):
    x, _ = bird_input
    names = ["MobilenetV2/Conv/Relu6", "MobilenetV2/expanded_conv_7/expand/Relu6",
             "MobilenetV2/expanded_conv_7/depthwise/Relu6", "ResizeBilinear_2"]  # fmt: skip
    out = run_tflite(tflite_path, x, names)
    w = official.weights
    first = conv_same(x[0], w["MobilenetV2/Conv/weights"].transpose(1, 2, 3, 0), stride=2)
    np.testing.assert_allclose(
        out["MobilenetV2/Conv/Relu6"][0], np.clip(first + w["MobilenetV2/Conv/Conv2D_bias"], 0, 6), atol=1e-4
    )
    atrous = conv_same(
        out["MobilenetV2/expanded_conv_7/expand/Relu6"][0],
        w["MobilenetV2/expanded_conv_7/depthwise/depthwise_weights"].transpose(1, 2, 3, 0),
        dilation=2,
        depthwise=True,
    )
    np.testing.assert_allclose(
        out["MobilenetV2/expanded_conv_7/depthwise/Relu6"][0],
        np.clip(atrous + w["MobilenetV2/expanded_conv_7/depthwise/depthwise_bias"], 0, 6),
        atol=1e-4,
    )
    resized = tf.compat.v1.image.resize_bilinear(out["ResizeBilinear_2"], [257, 257], align_corners=True)
    np.testing.assert_allclose(out["ResizeBilinear_3"], resized.numpy(), atol=1e-4)


def test_bad_fetch_or_input_is_a_one_line_error(tflite_path, bird_input):
    message = r"no tensor 'logits/semantic/BiasAd' in .*tflite; closest names: 'logits/semantic/BiasAdd'"
    with pytest.raises(MissingTensorError, match=message):
        run_tflite(tflite_path, bird_input[0], ["logits/semantic/BiasAd"])
    message = r"input 'sub_7' of .* is float32 \(1, 257, 257, 3\), got float32 \(1, 256, 256, 3\)"
    with pytest.raises(ValueError, match=message):
        run_tflite(tflite_path, np.zeros((1, 256, 256, 3), np.float32))
