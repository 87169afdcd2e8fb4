"""Image sizes read from the encoded header, in the graph, before anything is decoded.

`read_header(data)` tells the format of one encoded image by the magic bytes `tf.io.decode_image`
uses, and reads the size its decoder will produce, with standard TensorFlow ops only (string
slices, `tf.io.decode_raw`, `tf.while_loop`), so a signature can refuse a 20000 x 20000 PNG from
its first 24 bytes instead of after decoding 1.2 GB:

- PNG: the IHDR chunk, which must come first: width and height, big-endian uint32 at bytes 16, 20
  (at most 2^31 - 1 each, as the PNG specification says).
- BMP: the BITMAPINFOHEADER, read as TensorFlow's BMP decoder reads it: width and height,
  little-endian int32 at bytes 18, 22 (a negative height means rows stored top-down).
- JPEG: the first start-of-frame segment (SOF0..SOF15 but DHT, JPG and DAC): height and width,
  big-endian uint16. Segments are walked from SOI by their lengths; bytes that are not a marker
  are skipped as libjpeg skips them, fill bytes too. SOS or EOI before a frame header, or more
  than `MAX_JPEG_SEGMENTS` segments, leave the size unread.
- GIF: every image descriptor. TensorFlow's GIF decoder returns the largest frame width x the
  largest frame height (not the logical screen), and giflib first reads every frame, one byte
  per pixel, so all frames count. The blocks are walked from the end of the global colour table,
  data sub-blocks skipped by their lengths; more than `MAX_GIF_STEPS` steps leave the size unread.

Reading costs O(header) for PNG and BMP; for JPEG and GIF a bounded number of loop steps
(`MAX_JPEG_SEGMENTS`, `MAX_GIF_STEPS`), however large the image claims to be.
"""

import tensorflow as tf

FORMATS = ("JPEG", "PNG", "GIF", "BMP")
"""The formats read, in the order of `read_header`'s "format" index."""
MAGIC = {"JPEG": b"\xff\xd8\xff", "PNG": b"\x89PNG\r\n\x1a\n", "GIF": b"GIF8", "BMP": b"BM"}
"""The first bytes that make `tf.io.decode_image` pick each decoder."""
UNKNOWN = -1
"""`read_header`'s format for other bytes, and its size and pixels when they cannot be read."""
MAX_JPEG_SEGMENTS = 512
"""JPEG segments walked before giving up on finding the frame header (real files have ~10-20)."""
MAX_GIF_STEPS = 8192
"""GIF blocks (and runs of data sub-blocks) walked before giving up: ~6 per frame, so ~1300 frames."""
HEADER_SIGNATURE = {
    "format": tf.TensorSpec([], tf.int32),
    "size": tf.TensorSpec([2], tf.int64),
    "pixels": tf.TensorSpec([], tf.int64),
}
"""What `read_header` returns, as `tf.map_fn`'s `fn_output_signature` takes it."""

_PAD = 16  # zero bytes appended to every byte array: fixed reads a few bytes past the end stay in range
_SUB_BLOCK_WINDOW = 1024  # GIF data sub-blocks looked at per step (256 KB of 255-byte ones)
_JPEG_SOF = [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF]
_JPEG_STANDALONE = [0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8]  # markers without a length
_JPEG_NO_FRAME = [0xD9, 0xDA]  # EOI, SOS: the frame header would have come before


def read_header(data) -> dict:
    """Returns what the header of the encoded image `data` (tf.string scalar) says:
    {"format": int32 index into `FORMATS` or `UNKNOWN`, "size": int64 [2] (height, width) the
    decoder will return, [-1, -1] when the header cannot be read (truncated, no frame header),
    "pixels": int64, the most pixels the decoder holds (height * width; for a GIF also the sum of
    every frame's), -1 when unread}. Nothing is decoded; sizes may be 0 or, for BMP, negative
    widths, as the header gives them."""
    index = image_format(data)
    readers = [_jpeg_size, _png_size, _gif_size, _bmp_size]
    size, pixels = tf.switch_case(index, [lambda read=read: read(data) for read in readers], default=_unread)
    return {"format": index, "size": size, "pixels": pixels}


def image_format(data) -> tf.Tensor:
    """Returns int32: the index in `FORMATS` of the format whose `MAGIC` starts `data`, else `UNKNOWN`."""
    index = tf.constant(UNKNOWN)
    for i, name in enumerate(FORMATS):
        starts = tf.equal(tf.strings.substr(data, 0, len(MAGIC[name])), MAGIC[name])
        index = tf.where(starts, i, index)
    return index


def _unread():
    """Returns the (size, pixels) of a header that cannot be read: ([-1, -1], -1), int64."""
    return tf.constant([UNKNOWN, UNKNOWN], tf.int64), tf.constant(UNKNOWN, tf.int64)


def _sized(readable, height, width):
    """Returns (int64 [2] (height, width), int64 height * width), or `_unread()` unless `readable`."""
    size = tf.where(readable, tf.stack([height, width]), tf.constant(UNKNOWN, tf.int64))
    return size, tf.where(readable, height * width, tf.constant(UNKNOWN, tf.int64))


def _bytes(data, length=None) -> tf.Tensor:
    """Returns uint8 [n + _PAD]: the first `length` bytes of `data` (all if None), then zeros."""
    if length is not None:
        data = tf.strings.substr(data, 0, length)
    return tf.pad(tf.io.decode_raw(data, tf.uint8), [[0, _PAD]])


def _number(values, offset, count: int, big_endian: bool, signed: bool = False) -> tf.Tensor:
    """Returns int64: the `count`-byte integer at `offset` of the uint8 vector `values`."""
    digits = tf.cast(tf.gather(values, tf.cast(offset, tf.int64) + tf.range(count, dtype=tf.int64)), tf.int64)
    shifts = 8 * tf.range(count, dtype=tf.int64)
    number = tf.reduce_sum(tf.bitwise.left_shift(digits, shifts[::-1] if big_endian else shifts))
    if signed:
        number = tf.where(number >= 2 ** (8 * count - 1), number - 2 ** (8 * count), number)
    return number


def _png_size(data):
    """Returns (size, pixels) from the IHDR chunk of PNG `data`, as `read_header`; unread if a
    side is over 2^31 - 1, the PNG limit (so that height * width fits int64)."""
    head = _bytes(data, 24)
    height, width = _number(head, 20, 4, big_endian=True), _number(head, 16, 4, big_endian=True)
    readable = (tf.strings.length(data) >= 24) & tf.reduce_all(tf.equal(head[12:16], list(b"IHDR")))
    return _sized(readable & (tf.maximum(height, width) < 2**31), height, width)


def _bmp_size(data):
    """Returns (size, pixels) from the BITMAPINFOHEADER of BMP `data`, as `read_header`: the
    height's absolute value (negative = rows stored top-down), the width as signed."""
    head = _bytes(data, 26)
    height = tf.abs(_number(head, 22, 4, big_endian=False, signed=True))
    return _sized(tf.strings.length(data) >= 26, height, _number(head, 18, 4, big_endian=False, signed=True))


def _first_at_or_after(positions, start):
    """Returns int64: the first of the sorted `positions` >= `start`; their last (a sentinel) if none is."""
    index = tf.searchsorted(positions, tf.reshape(start, [1]), side="left", out_type=tf.int64)[0]
    return tf.gather(positions, tf.minimum(index, tf.size(positions, tf.int64) - 1))


def _jpeg_size(data):
    """Returns (size, pixels) from the first start-of-frame segment of JPEG `data`, as `read_header`.

    Each step finds the next marker as libjpeg's `next_marker` does (skip to an 0xFF, skip fill
    0xFF bytes; "FF 00" is skipped as data) and jumps over its segment by its length."""
    values = _bytes(data)
    end = tf.size(values, tf.int64) - _PAD
    body = values[:end]
    sentinel = tf.reshape(end, [1])
    ff = tf.concat([tf.where(tf.equal(body, 0xFF))[:, 0], sentinel], 0)
    other = tf.concat([tf.where(tf.not_equal(body, 0xFF))[:, 0], sentinel], 0)

    def step(position, segments, size, done):
        at = _first_at_or_after(other, _first_at_or_after(ff, position) + 1)  # the marker's code
        marker = tf.gather(values, at)
        is_frame = tf.reduce_any(tf.equal(marker, _JPEG_SOF)) & (at + 7 < end)
        length = _number(values, at + 1, 2, big_endian=True)
        no_length = tf.reduce_any(tf.equal(marker, _JPEG_STANDALONE)) | tf.equal(marker, 0)
        stop = (at >= end) | tf.reduce_any(tf.equal(marker, _JPEG_NO_FRAME)) | (~no_length & (length < 2))
        frame = tf.stack([_number(values, at + 4, 2, True), _number(values, at + 6, 2, True)])
        following = at + 1 + tf.where(no_length, tf.constant(0, tf.int64), length)
        return following, segments + 1, tf.where(is_frame, frame, size), done | is_frame | stop

    def more(position, segments, size, done):
        return ~done & (segments < MAX_JPEG_SEGMENTS) & (position < end)

    start = (tf.constant(2, tf.int64), tf.constant(0), tf.constant([UNKNOWN, UNKNOWN], tf.int64), tf.constant(False))
    _, _, size, _ = tf.while_loop(more, step, start)
    return _sized(size[0] >= 0, size[0], size[1])


def _colour_table_bytes(packed):
    """Returns int64: the bytes of the colour table a GIF descriptor's packed field announces."""
    packed = tf.cast(packed, tf.int64)
    entries = tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7))
    return tf.where(tf.bitwise.bitwise_and(packed, 0x80) > 0, 3 * entries, tf.constant(0, tf.int64))


def _gif_size(data):
    """Returns (size, pixels) from the image descriptors of GIF `data`, as `read_header`: the
    largest frame height and width, and the most of (that canvas, every frame's pixels summed);
    unread if no descriptor is found within `MAX_GIF_STEPS` steps."""
    values = _bytes(data)
    end = tf.size(values, tf.int64) - _PAD

    def step(position, in_data, steps, frames, frame_size, frame_pixels, done):
        position = tf.where(in_data, _past_full_sub_blocks(values, position, end), position)
        at = tf.minimum(position, end)  # reads past the end see the zero padding
        code = tf.cast(tf.gather(values, at), tf.int64)  # a block's introducer, or a sub-block's length
        is_image = ~in_data & tf.equal(code, 0x2C) & (position + 9 < end)
        is_extension = ~in_data & tf.equal(code, 0x21)
        image = tf.stack([_number(values, at + 7, 2, False), _number(values, at + 5, 2, False)])
        image_data = position + 10 + _colour_table_bytes(tf.gather(values, at + 9)) + 1  # + LZW code size
        following = tf.where(in_data, position + 1 + code, tf.where(is_extension, position + 2, image_data))
        frames += tf.cast(is_image, tf.int64)
        frame_size = tf.where(is_image, tf.maximum(frame_size, image), frame_size)
        frame_pixels += tf.where(is_image, image[0] * image[1], tf.constant(0, tf.int64))
        done |= ~in_data & ~is_image & ~is_extension  # the trailer, or a block giflib would refuse
        in_data = tf.where(in_data, code > 0, is_image | is_extension)
        return following, in_data, steps + 1, frames, frame_size, frame_pixels, done

    def more(position, in_data, steps, frames, frame_size, frame_pixels, done):
        return ~done & (position < end) & (steps < MAX_GIF_STEPS)

    zero = tf.constant(0, tf.int64)
    start = (13 + _colour_table_bytes(tf.gather(values, 10)), tf.constant(False), zero, zero, tf.stack([zero, zero]),
             zero, tf.constant(False))
    _, _, steps, frames, frame_size, frame_pixels, _ = tf.while_loop(more, step, start)
    readable = (frames > 0) & (steps < MAX_GIF_STEPS)
    size, canvas = _sized(readable, frame_size[0], frame_size[1])
    return size, tf.where(readable, tf.maximum(canvas, frame_pixels), canvas)


def _past_full_sub_blocks(values, position, end):
    """Returns int64: the first data sub-block of the chain starting at `position` whose length
    is not 255, looking at most `_SUB_BLOCK_WINDOW` sub-blocks ahead (then the one after those),
    or a position >= `end`. Encoders write 255-byte sub-blocks, so a vectorised look at every
    256th byte skips an image's data in a few steps instead of one step per sub-block."""
    lengths = values[position : tf.minimum(end, position + 256 * _SUB_BLOCK_WINDOW) : 256]
    full = tf.argmax(tf.cast(tf.not_equal(tf.concat([lengths, [0]], 0), 255), tf.int32), output_type=tf.int64)
    return position + 256 * full
