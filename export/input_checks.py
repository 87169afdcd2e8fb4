"""In-graph checks of what a serving signature receives, run before any decoding or model op.

TF Serving and `signatures[...]` pass a tensor of any rank and shape into a signature whatever
its declared shape says (a rank-3 `images` tensor reached oneDNN's convolution and aborted the
process). So every check reads the shape the request really has (`runtime_shape`), and each bad
request fails with an InvalidArgumentError whose message says what was expected and what came:

- a tensor input: its rank, the 3 RGB channels, an empty batch or image, `batch_size` and
  `input_size` when the export fixes them (a wrong dtype is refused by the signature itself);
- encoded images: the format (JPEG, PNG, GIF, BMP), a size read from the header
  (`export.image_header`) that is not empty and the same for every image of the request;
- every input: the pixels the request would make the server hold, `request_pixels`, at most
  `max_pixels`, for encoded images from their headers, before anything is decoded.

Checks run in order, each after the one before passed (`checked`), so a check may assume what the
earlier ones established (e.g. read the height once the rank is known to be 4).
"""

import tensorflow as tf

from export.image_header import FORMATS, HEADER_SIGNATURE, UNKNOWN, read_header

MIXED_SIZES_MESSAGE = "all images of one request must have the same height and width"
TOO_LARGE_MESSAGE = "request too large"


def checked(value, checks) -> tf.Tensor:
    """Returns `tf.identity(value)`, computed only after every check of `checks` passed, in order.

    Each check is a function () -> (ok bool scalar, message string scalar), called under the
    control dependency of the check before it; the first check whose `ok` is False raises
    InvalidArgumentError with its message and nothing after it runs."""
    passed = []
    for check in checks:
        with tf.control_dependencies(passed):
            ok, message = check()
            passed = [tf.debugging.Assert(ok, [message])]
    with tf.control_dependencies(passed):
        return tf.identity(value)


def message(template: str, *values) -> tf.Tensor:
    """Returns tf.string: `template` with each "{}" replaced by one of `values` (tensors in full)."""
    return tf.strings.format(template, list(values), summarize=-1)


def runtime_shape(value) -> tf.Tensor:
    """Returns int64 [rank]: the shape `value` has when the graph runs, whatever its declared shape.

    Grappler folds `Rank`, `Size` and a fully defined `Shape` of a signature input into constants
    from its declared shape (`tf.rank` of a rank-3 request reads 4, also behind
    `placeholder_with_default`). Wrapped in an Optional and unwrapped with an unknown shape (no
    copy), the value has no static shape left to fold."""
    optional = tf.raw_ops.OptionalFromValue(components=[value])
    (unknown,) = tf.raw_ops.OptionalGetValue(optional=optional, output_types=[value.dtype],
                                             output_shapes=[tf.TensorShape(None)])
    return tf.shape(unknown, out_type=tf.int64)


def first(flags) -> tf.Tensor:
    """Returns int64: the index of the first True in the bool vector `flags` (0 if none)."""
    return tf.argmax(tf.cast(flags, tf.int32), output_type=tf.int64)


def batch_checks(shape, name: str, expected: str, rank: int, batch_size) -> list:
    """Returns the checks of a batch input `name` of runtime `shape`: its `rank`, at least one
    element and, unless `batch_size` is None, exactly `batch_size`; `expected` describes the input."""
    checks = [
        lambda: (tf.equal(tf.size(shape), rank), message(f"{name} must be {expected}; got shape {{}}", shape)),
        lambda: (shape[0] > 0, message(f"{name} holds no image: got shape {{}}", shape)),
    ]
    if batch_size is not None:
        checks.append(lambda: (tf.equal(shape[0], batch_size),
                               message(f"{name} must hold exactly {batch_size} images (the batch size of the export); "
                                       f"got {{}}", shape[0])))
    return checks


def image_tensor_checks(shape, name: str, options, computed_size) -> list:
    """Returns the checks of an image tensor `name` of runtime `shape`, expected uint8
    [N, H, W, 3] (N, H, W fixed where `options` fix them): rank, channels, batch, a non-empty
    image, `options.input_size` and the request's pixels (`pixel_check`)."""
    height, width = options.input_size or ("H", "W")
    expected = f"uint8 [{options.batch_size or 'N'}, {height}, {width}, 3] (RGB images)"
    checks = batch_checks(shape, name, expected, 4, options.batch_size)
    checks.insert(1, lambda: (tf.equal(shape[3], 3), message(f"{name} must be {expected}: 3 channels; got shape {{}}", shape)))
    checks.append(lambda: (tf.reduce_all(shape[1:3] > 0), message(f"{name} must not be empty: got shape {{}}", shape)))
    if options.input_size is not None:
        checks.append(lambda: (tf.reduce_all(tf.equal(shape[1:3], options.input_size)),
                               message(f"{name} must be {expected} (the input size of the export); got shape {{}}", shape)))
    checks.append(lambda: pixel_check(shape[0], shape[1:3], computed_size(shape[1:3]), options.max_pixels))
    return checks


def encoded_checks(encoded, headers, name: str, options, computed_size) -> list:
    """Returns the checks of the encoded images tf.string [N] `encoded` from their `headers`
    (`read_headers`): a known format, a readable and non-empty size, the same for all, and the
    request's pixels (`pixel_check`, counting what decoding holds)."""
    kinds, sizes = headers["format"], headers["size"]
    format_names = tf.constant(FORMATS)

    def bad_format():
        i = first(tf.equal(kinds, UNKNOWN))
        return (tf.reduce_all(tf.not_equal(kinds, UNKNOWN)),
                message(f"Unknown image file format: {name}[{{}}] ({{}} bytes) is not a JPEG, PNG, GIF or BMP image",
                        i, tf.strings.length(encoded[i])))

    def unreadable():
        i = first(sizes[:, 0] < 0)
        return (tf.reduce_all(sizes[:, 0] >= 0),
                tf.strings.join([message(f"{name}[{{}}]: cannot read the image size from its ", i),
                                 tf.gather(format_names, kinds[i]), " header (truncated or malformed)"]))

    def empty():
        i = first(tf.reduce_any(sizes <= 0, axis=1))
        return (tf.reduce_all(sizes > 0), message(f"{name}[{{}}] is an empty image: its header says {{}} x {{}}",
                                                  i, sizes[i, 0], sizes[i, 1]))

    def mixed():
        i = first(tf.reduce_any(tf.not_equal(sizes, sizes[0]), axis=1))
        return (tf.reduce_all(tf.equal(sizes, sizes[0])),
                message(f"{MIXED_SIZES_MESSAGE}: {name}[0] is {{}} x {{}}, {name}[{{}}] is {{}} x {{}}; send them as "
                        f"separate requests", sizes[0, 0], sizes[0, 1], i, sizes[i, 0], sizes[i, 1]))

    def pixels():
        count = tf.shape(kinds, out_type=tf.int64)[0]
        return pixel_check(count, sizes[0], computed_size(sizes[0]), options.max_pixels, headers["pixels"])

    return [bad_format, unreadable, empty, mixed, pixels]


def pixel_check(count, size, computed, max_pixels: int, decoded=None):
    """Returns the check that a request of `count` images of `size` (int64 [2]), which the model
    computes at `computed` (int64 [2]) each and whose decoding holds `decoded` pixels (int64
    [N], None: no decoding), holds at most `max_pixels` pixels in all (`request_pixels`)."""
    total = request_pixels(count, size, computed, decoded)
    decoding = "" if decoded is None else ", decoding holds {}"
    text = (f"{TOO_LARGE_MESSAGE}: {{}} image(s) of {{}} x {{}} pixels, computed at {{}} x {{}}{decoding}: {{}} pixels "
            f"in all; at most max_pixels = {max_pixels} per request")
    values = [count, size[0], size[1], computed[0], computed[1]]
    values += [] if decoded is None else [_as_count(tf.reduce_sum(tf.cast(decoded, tf.float64)))]
    return total <= max_pixels, message(text, *values, _as_count(total))


def request_pixels(count, size, computed, decoded=None) -> tf.Tensor:
    """Returns float64 (no int64 overflow, exact below 2^53): the most pixels a request holds at
    once: `count` times the larger of an image's `size` and the size the model `computed` at
    (int64 [2] each), or the pixels decoding holds (`decoded`: int64 [N], e.g. every frame of a
    GIF), whichever is more."""
    area = tf.maximum(tf.reduce_prod(tf.cast(size, tf.float64)), tf.reduce_prod(tf.cast(computed, tf.float64)))
    total = tf.cast(count, tf.float64) * area
    return total if decoded is None else tf.maximum(total, tf.reduce_sum(tf.cast(decoded, tf.float64)))


def _as_count(pixels) -> tf.Tensor:
    """Returns int64: the float64 pixel count `pixels`, at most 2^62, to print as an integer."""
    return tf.cast(tf.minimum(pixels, 2.0**62), tf.int64)


def decoded_checks(decoded_shape, size, name: str, index) -> list:
    """Returns the check that an image `name`[`index`] decoded to `decoded_shape` has the `size`
    its header gave (an image whose decoder disagrees with `image_header` is refused, never served)."""
    return [lambda: (tf.reduce_all(tf.equal(decoded_shape[:2], size)),
                     message(f"{name}[{{}}] decoded to {{}} x {{}} pixels, but its header says {{}} x {{}}",
                             index, decoded_shape[0], decoded_shape[1], size[0], size[1]))]


def read_headers(encoded) -> dict:
    """Returns `image_header.read_header` of every encoded image of tf.string [N], batched."""
    return tf.map_fn(read_header, encoded, fn_output_signature=HEADER_SIGNATURE)
