"""Serving signatures: decoding, normalisation, resizing, test-time augmentation (the evaluator's
`multi_scale`) and the optional dense CRF all run inside the graph, with standard TensorFlow ops only (no py_function).

Signatures (what TF Serving and `tf.saved_model.load(...).signatures[...]` see). The first input
type of `ServingOptions.input_types` is `serving_default`; every other one is `serving_<type>`:

| input type     | name if not first      | input                                      |
|----------------|------------------------|--------------------------------------------|
| `image_bytes`  | `serving_image_bytes`  | `image_bytes` tf.string [N] (JPEG/PNG/BMP/GIF) |
| `image_tensor` | `serving_image_tensor` | `images` uint8 [N, H, W, 3]                |
| `tf_example`   | `serving_tf_example`   | `examples` tf.string [N]: serialized tf.Example, image bytes under `image/encoded` |

Outputs: `labels` int32 [N, H, W] (the class map at the input's own resolution) and, where asked,
`probabilities` float32 [N, H, W, C]. Defaults: `labels` for `image_bytes` and `tf_example`,
`labels` and `probabilities` for `image_tensor`. N is dynamic unless `batch_size` is set.

Decoded images: grayscale is repeated to RGB, an alpha channel dropped, 16-bit PNG scaled to
8 bits. Every input is checked in the graph before anything is decoded or computed
(`export.input_checks`): a request of the wrong rank, channels, batch size or input size, an
empty batch or image, bytes that are not JPEG, PNG, GIF or BMP, images of different sizes
(`MIXED_SIZES_MESSAGE`) or more than `max_pixels` pixels (`TOO_LARGE_MESSAGE`, read from the
encoded headers by `export.image_header`) fail with an InvalidArgumentError saying what was
expected and what came. Images smaller than `MIN_SIZE` are served: each pass of the model runs on
them padded, as `pad_to_size` pads, and the labels come at the image's own size.
"""

import dataclasses

import keras
import tensorflow as tf

from deeplab_tf.config import EvalConfig
from deeplab_tf.evaluation.inference import FUSIONS, model_probabilities, multi_scale, padded, valid_scales
from export.input_checks import (batch_checks, checked, decoded_checks, encoded_checks, image_tensor_checks,
                                 read_headers, runtime_shape)

INPUT_TYPES = ("image_bytes", "image_tensor", "tf_example")
INPUT_NAMES = {"image_bytes": "image_bytes", "image_tensor": "images", "tf_example": "examples"}
OUTPUTS = ("labels", "probabilities")
DEFAULT_OUTPUTS = {"image_bytes": ("labels",), "image_tensor": ("labels", "probabilities"), "tf_example": ("labels",)}
IMAGE_FEATURE_KEY = "image/encoded"
MAX_PIXELS = 2**23  # 8.4 MP: 4K UHD (3840x2160) and Cityscapes (2048x1024) fit, a 6000x8000 photo does not
MIN_SIZE = 16
"""The least height and width every pass of the model runs at; smaller images (or scaled passes)
are padded to it. DeepLab's output stride is at most 16: below it a backbone whose strided
convolutions pad "valid" (Keras MobileNetV2: 15 pixels at output stride 16, 7 at 8) has an empty
last feature map, which Eigen's kernels refuse and oneDNN's compute into wrong values."""


def signature_name(input_type: str, index: int) -> str:
    """Returns the signature name of the `index`-th input type: the first is `serving_default`."""
    return "serving_default" if index == 0 else f"serving_{input_type}"


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """What the exported signatures take, compute and return.

    Args:
        input_types: tuple of str from `INPUT_TYPES`, one signature each, the first is
            `serving_default`. Defaults to ("image_bytes", "image_tensor").
        outputs: tuple of str from `OUTPUTS` returned by every signature; () keeps
            `DEFAULT_OUTPUTS`. Defaults to ().
        batch_size: int or None. Fixed batch size of every signature; None = dynamic.
        input_size: (height, width) or None. The model runs at this size (inputs resized
            bilinearly, probabilities resized back); `image_tensor` then takes exactly this size.
            None = each request's own size. Defaults to None.
        scales: tuple of float. Test-time input scales whose probabilities are fused.
            Defaults to (1.0,).
        flip: bool. Also fuse the left-right flipped input. Defaults to False.
        fusion: str. How the passes are fused, as the evaluator does: "mean" or "max"
            (`deeplab_tf.evaluation.inference.multi_scale`). Defaults to "mean".
        pad_to_size: (height, width). Every pass runs on its image padded bottom/right with
            `pad_value` to at least this size, cropped back after (`inference.padded`, the
            experiment's `eval.pad_to_size`); (0, 0) = no padding. Defaults to (0, 0).
        pad_value: tuple of 3 floats. The RGB pad pixel (0..255). Defaults to `EvalConfig`'s
            (the official mean pixel, 127.5 each).
        crf: `deeplab_tf.crf.DenseCRFParams` or None. Refine the probabilities with the dense
            CRF (TensorFlow backend) before taking labels. Defaults to None.
        max_pixels: int. The most pixels one request may hold: N images times the larger of
            height * width and the size the model computes at (`computed_size`: `input_size` or the
            image's, sides raised to `pad_to_size` and `MIN_SIZE`), or, for encoded images, what
            decoding holds (a GIF's frames all count), read from the headers before decoding.
            Test-time scales above 1 cost more than that. At least the smallest request's
            (`least_request_pixels`): options no request fits are refused. Defaults to `MAX_PIXELS`.
    """

    input_types: tuple = ("image_bytes", "image_tensor")
    outputs: tuple = ()
    batch_size: int | None = None
    input_size: tuple | None = None
    scales: tuple = (1.0,)
    flip: bool = False
    fusion: str = "mean"
    pad_to_size: tuple = (0, 0)
    pad_value: tuple = EvalConfig.pad_value
    crf: object = None
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        problems = []
        if not self.input_types or len(set(self.input_types)) != len(self.input_types):
            problems.append(f"input types must be distinct and non-empty, got {self.input_types}")
        problems += [f"unknown input type {t!r} (known: {', '.join(INPUT_TYPES)})" for t in self.input_types if t not in INPUT_TYPES]
        problems += [f"unknown output {o!r} (known: {', '.join(OUTPUTS)})" for o in self.outputs if o not in OUTPUTS]
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"batch size must be >= 1 or None, got {self.batch_size}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            problems.append(f"input size must be (height, width) >= 1, got {self.input_size}")
        if not valid_scales(self.scales):
            problems.append(f"scales must be positive finite numbers, got {self.scales}")
        if len(self.pad_to_size) != 2 or (tuple(self.pad_to_size) != (0, 0) and min(self.pad_to_size) < 1):
            problems.append(f"pad size must be (0, 0) or (height, width) >= 1, got {self.pad_to_size}")
        if len(self.pad_value) != 3 or not all(0 <= v <= 255 for v in self.pad_value):
            problems.append(f"pad value must be 3 numbers 0..255, got {self.pad_value}")
        if self.fusion not in FUSIONS:
            problems.append(f"unknown fusion {self.fusion!r} (known: {', '.join(FUSIONS)})")
        if self.max_pixels < 1:
            problems.append(f"max_pixels must be >= 1, got {self.max_pixels}")
        if not problems and least_request_pixels(self) > self.max_pixels:
            count, (height, width) = self.batch_size or 1, least_computed_size(self)
            problems.append(
                f"no request could be served: the smallest, {count} image(s) computed at {height} x {width}, holds "
                f"{least_request_pixels(self)} pixels, more than max_pixels = {self.max_pixels}")
        if problems:
            raise ValueError("Invalid serving options: " + "; ".join(problems))

    def outputs_for(self, input_type: str) -> tuple:
        """Returns the output names of the signature of `input_type`."""
        return self.outputs or DEFAULT_OUTPUTS[input_type]

    def describe(self) -> dict:
        """Returns the options as JSON-safe values, with each signature's name, input and outputs."""
        values = dataclasses.asdict(self)
        values["crf"] = self.crf.to_dict() if self.crf is not None else None
        values["signatures"] = {
            signature_name(t, i): {"input": INPUT_NAMES[t], "outputs": list(self.outputs_for(t))}
            for i, t in enumerate(self.input_types)
        }
        return values


def computed_size(options: ServingOptions):
    """Returns computed(size int64 [2]) -> int64 [2]: the (height, width) the model computes at,
    at scale 1, for an image of `size`: `options.input_size` or the image's own, each side
    raised to `options.pad_to_size` and `MIN_SIZE`."""
    floor = tf.constant(_pass_floor(options), tf.int64)

    def computed(size):
        base = size if options.input_size is None else tf.constant(options.input_size, tf.int64)
        return tf.maximum(base, floor)

    return computed


def least_computed_size(options: ServingOptions) -> tuple:
    """Returns (height, width): the least size the model computes any image at, scale 1
    (`computed_size` of a 1 x 1 image)."""
    floor = _pass_floor(options)
    return floor if options.input_size is None else tuple(map(max, options.input_size, floor))


def least_request_pixels(options: ServingOptions) -> int:
    """Returns the pixels the smallest request holds as `max_pixels` counts them
    (`input_checks.request_pixels`): `batch_size` (or 1) images at `least_computed_size`."""
    height, width = least_computed_size(options)
    return (options.batch_size or 1) * height * width


def _pass_floor(options: ServingOptions) -> tuple:
    """Returns (height, width): the least size of every model pass, `pad_to_size` raised to `MIN_SIZE`."""
    return tuple(max(side, MIN_SIZE) for side in options.pad_to_size)


def at_least(scorer, size: int, value):
    """Returns a scorer running `scorer` on the pixels padded bottom/right with the RGB pixel
    `value` to at least `size` x `size` and returning its probabilities cropped back to the input:
    float32 [B, H, W, C]. Pixels already that large reach `scorer` unchanged, bit for bit (unlike
    `inference.padded`, which computes the official graphs' `pad(pixels - value) + value`)."""
    fill = tf.constant(value, tf.float32)

    def score(pixels):
        height, width = tf.shape(pixels)[1], tf.shape(pixels)[2]
        paddings = [[0, 0], [0, tf.maximum(size - height, 0)], [0, tf.maximum(size - width, 0)], [0, 0]]
        border = tf.pad(tf.zeros_like(pixels[..., :1]), paddings, constant_values=1.0)
        return scorer(tf.pad(pixels, paddings) + border * fill)[:, :height, :width]

    return score


def checked_batch(values, name: str, content: str, options: ServingOptions):
    """Returns the string input `values` (signature input `name`) once it is a vector of
    `options.batch_size` (any if None, at least one) `content` items, else raises
    InvalidArgumentError (`input_checks.batch_checks`)."""
    expected = f"a vector [{options.batch_size or 'N'}] of {content}"
    return checked(values, batch_checks(runtime_shape(values), name, expected, 1, options.batch_size))


def checked_images(images, options: ServingOptions):
    """Returns the `images` input once it is uint8 [N, H, W, 3] within `options` (batch size,
    input size, max_pixels), else raises InvalidArgumentError (`input_checks.image_tensor_checks`)."""
    return checked(images, image_tensor_checks(runtime_shape(images), "images", options, computed_size(options)))


def decode_images(encoded, name: str, options: ServingOptions):
    """Returns the uint8 [N, H, W, 3] images of the encoded images tf.string [N] (signature
    input `name`), decoded only after their headers passed `input_checks.encoded_checks` (see
    the module docstring for conversions and errors)."""
    headers = read_headers(encoded)
    encoded = checked(encoded, encoded_checks(encoded, headers, name, options, computed_size(options)))

    def decode(item):
        data, size, index = item
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
        return checked(image, decoded_checks(tf.shape(image, out_type=tf.int64), size, name, index))

    items = (encoded, headers["size"], tf.range(tf.size(encoded, out_type=tf.int64)))
    return tf.map_fn(decode, items, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def parse_examples(examples, options: ServingOptions):
    """Returns the uint8 [N, H, W, 3] images encoded under `IMAGE_FEATURE_KEY` in serialized
    tf.Example protos [N] (`decode_images`); a missing key fails with InvalidArgumentError naming it."""
    features = tf.io.parse_example(examples, {IMAGE_FEATURE_KEY: tf.io.FixedLenFeature([], tf.string)})
    return decode_images(features[IMAGE_FEATURE_KEY], "examples", options)


def make_predict(model: keras.Model, normalize, options: ServingOptions):
    """Returns predict(images uint8 [N, H, W, 3]) -> {"labels" int32 [N, H, W], "probabilities"
    float32 [N, H, W, C]}: the evaluator's test-time augmentation
    (`deeplab_tf.evaluation.inference.multi_scale` over `options.scales`, flips and `fusion`,
    at `options.input_size`) of the model's softmax probabilities on images padded to
    `options.pad_to_size` (`inference.padded`) and `MIN_SIZE` (`at_least`), optionally CRF-refined.

    `normalize` maps float32 pixels 0..255 to the model input (the backbone's normaliser).
    """
    scorer = padded(lambda pixels: model_probabilities(model, normalize, pixels), options.pad_to_size,
                    options.pad_value)
    scorer = at_least(scorer, MIN_SIZE, options.pad_value)
    scorer = multi_scale(scorer, options.scales, options.flip, options.fusion, base_size=options.input_size)

    def predict(images):
        probabilities = scorer(tf.cast(images, tf.float32))
        if options.crf is not None:
            from deeplab_tf.crf import refine_batch

            probabilities = refine_batch(images, probabilities, options.crf)
        return {"labels": tf.argmax(probabilities, axis=-1, output_type=tf.int32), "probabilities": probabilities}

    return predict


def serving_functions(model: keras.Model, normalize, options: ServingOptions) -> dict:
    """Returns {signature name: tf.function with an input signature}, as the module docstring lists."""
    predict = make_predict(model, normalize, options)
    height, width = options.input_size or (None, None)
    inputs = {
        "image_bytes": (tf.TensorSpec([options.batch_size], tf.string), lambda values: decode_images(
            checked_batch(values, "image_bytes", "encoded images", options), "image_bytes", options)),
        "image_tensor": (tf.TensorSpec([options.batch_size, height, width, 3], tf.uint8),
                         lambda values: checked_images(values, options)),
        "tf_example": (tf.TensorSpec([options.batch_size], tf.string), lambda values: parse_examples(
            checked_batch(values, "examples", "serialized tf.Example protos", options), options)),
    }

    def make(input_type):
        spec, to_images = inputs[input_type]
        name, outputs = INPUT_NAMES[input_type], options.outputs_for(input_type)

        @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=name)])
        def serve(values):
            result = predict(to_images(values))
            return {key: result[key] for key in outputs}

        return serve

    return {signature_name(t, i): make(t) for i, t in enumerate(options.input_types)}


def build_export_archive(model: keras.Model, normalize, options: ServingOptions = ServingOptions()) -> keras.export.ExportArchive:
    """Returns an ExportArchive tracking `model` with the endpoints of `serving_functions`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in serving_functions(model, normalize, options).items():
        archive.add_endpoint(name, function)
    return archive
