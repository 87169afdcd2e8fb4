"""export.image_header: the size read from an encoded header equals what the image was written
with (cv2 / PIL) and what `tf.io.decode_image` returns; fabricated headers of huge images are
read without decoding; other bytes are unknown or unread. Read eagerly and inside a tf.function
over a batch (`tf.map_fn`), as the signatures read it."""

import io
import struct
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bench.request_kinds import encode, fake_bmp, fake_gif, fake_jpeg, fake_png, png_chunk
from export.image_header import FORMATS, HEADER_SIGNATURE, MAX_GIF_STEPS, MAX_JPEG_SEGMENTS, UNKNOWN, read_header

SIZES = [(1, 1), (7, 300), (300, 7), (90, 130)]


def pattern(height, width, seed=0):
    """Returns a uint8 [height, width, 3] image of random pixels."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def cv2_bytes(image, extension, params=()):
    ok, data = cv2.imencode(extension, image, list(params))
    assert ok
    return data.tobytes()


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def read_batch(encoded):
    return tf.map_fn(read_header, encoded, fn_output_signature=HEADER_SIGNATURE)


def read(data: bytes, eager: bool = True) -> tuple:
    """Returns (format name or None, (height, width), pixels), read in a tf.function over a
    batch and, if `eager` (slow for long walks: every loop step runs op by op), checked equal to
    the reading run eagerly."""
    batched = {key: value.numpy()[1] for key, value in read_batch(tf.constant([b"", data])).items()}
    if eager:
        for key, value in read_header(tf.constant(data)).items():
            np.testing.assert_array_equal(value.numpy(), batched[key], err_msg=key)
    name = FORMATS[batched["format"]] if batched["format"] != UNKNOWN else None
    return name, tuple(int(side) for side in batched["size"]), int(batched["pixels"])


def decoded_size(data: bytes) -> tuple:
    return tuple(tf.io.decode_image(data, channels=3, expand_animations=False).shape[:2])


def real_images():
    """(id, bytes, height, width) of images written by cv2 and PIL in every format and several ways."""
    cases = []
    for height, width in SIZES:
        image = pattern(height, width)
        cases += [
            (f"png-cv2-{height}x{width}", cv2_bytes(image, ".png"), height, width),
            (f"png16-cv2-{height}x{width}", cv2_bytes(image.astype(np.uint16) * 257, ".png"), height, width),
            (f"jpeg-cv2-{height}x{width}", cv2_bytes(image, ".jpg"), height, width),
            (f"jpeg-progressive-{height}x{width}", cv2_bytes(image, ".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)), height, width),
            (f"jpeg-pil-exif-icc-{height}x{width}", encode(image, "JPEG", exif=b"Exif\x00\x00" + b"\x00" * 5000,
                                                               icc_profile=b"\x01" * 70000), height, width),
            (f"bmp-cv2-{height}x{width}", cv2_bytes(image, ".bmp"), height, width),
            (f"gif-pil-{height}x{width}", encode(image, "GIF"), height, width),
        ]
    frames = [Image.fromarray(pattern(60, 80, seed)) for seed in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    cases.append(("gif-pil-animated-60x80", buffer.getvalue(), 60, 80))
    return cases


@pytest.mark.parametrize("data,height,width", [case[1:] for case in real_images()], ids=[case[0] for case in real_images()])
def test_real_images_read_as_written_and_as_decoded(data, height, width):
    name, size, pixels = read(data)
    assert size == (height, width) == decoded_size(data)
    assert name == {b"\x89P": "PNG", b"\xff\xd8": "JPEG", b"BM": "BMP", b"GI": "GIF"}[data[:2]]
    if name != "GIF":
        assert pixels == height * width


def test_gif_size_is_the_largest_frame_and_every_frame_counts():
    real = encode(pattern(20, 30), "GIF")
    larger_screen = real[:6] + struct.pack("<HH", 500, 400) + real[10:]
    assert read(larger_screen)[1] == (20, 30) == decoded_size(larger_screen)  # the logical screen is not the size
    frames = [(30, 20), (50, 10), (5, 5)]  # (width, height): a 20 x 50 canvas, 600 + 500 + 25 frame pixels
    assert read(fake_gif(frames, screen=(8, 8))) == ("GIF", (20, 50), 1125)
    assert read(fake_gif([(5, 40), (40, 5)])) == ("GIF", (40, 40), 1600)  # the canvas holds more
    assert read(fake_gif([(100, 100)] * 300), eager=False) == ("GIF", (100, 100), 300 * 100 * 100)


def test_jpeg_markers_are_walked_as_libjpeg_walks_them():
    comment = b"\xff\xfe\x00\x06abcd"
    app = b"\xff\xe1" + struct.pack(">H", 2 + 3000) + b"\xff\xc0" * 1500  # SOF-looking bytes inside a segment
    assert read(fake_jpeg(640, 480, comment + app))[1] == (480, 640)
    assert read(fake_jpeg(640, 480, comment + b"\x00\x12garbage\xff\xff\xff"))[1] == (480, 640)  # stray, fill bytes
    assert read(fake_jpeg(640, 480, comment + b"\xff\x00\xff\xd0"))[1] == (480, 640)  # stuffed 0, no-length marker
    progressive = b"\xff\xd8" + b"\xff\xc2" + fake_jpeg(33, 44)[4:]
    assert read(progressive)[1] == (44, 33)
    real = cv2_bytes(pattern(20, 30), ".jpg")
    first_end = 4 + struct.unpack(">H", real[4:6])[0]  # after SOI and the first segment (cv2's JFIF APP0)
    stray = real[:first_end] + b"\x00\x01\x02" + real[first_end:]  # libjpeg skips them ("extraneous bytes")
    assert read(stray)[1] == (20, 30) == decoded_size(stray)


UNREADABLE = [
    (b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 20, "scan before any frame header"),
    (b"\xff\xd8\xff\xd9", "end of image before any frame header"),
    (b"\xff\xd8\xff\xfe\x00\x01", "a segment length below 2"),
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * (MAX_JPEG_SEGMENTS + 1) + fake_jpeg(10, 10)[2:], "too many segments"),
    (fake_jpeg(640, 480)[:8], "a truncated frame header"),
    (fake_png(10, 10)[:23], "a truncated IHDR"),
    (fake_png(2**31, 1), "a PNG side over 2^31 - 1"),
    (b"\x89PNG\r\n\x1a\n" + png_chunk(b"tEXt", b"a" * 13), "no IHDR first"),
    (fake_bmp(10, 10)[:25], "a truncated info header"),
    (b"GIF89a" + struct.pack("<HH", 10, 10) + b"\x00\x00\x00\x3b", "no image descriptor"),
    (b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0) + b"\x21\xfe\x00" * (MAX_GIF_STEPS // 2) + fake_gif([(1, 1)])[19:],
     "too many GIF blocks"),
]


@pytest.mark.parametrize("data,reason", UNREADABLE, ids=[reason for _, reason in UNREADABLE])
def test_unreadable_headers(data, reason):
    name, size, pixels = read(data, eager=len(data) < 1000)
    assert name is not None and size == (UNKNOWN, UNKNOWN) and pixels == UNKNOWN, reason


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8", b"\x89PNG", b"RIFF\x00\x00\x00\x00WEBPVP8 "])
def test_other_bytes_are_unknown(data):
    assert read(data)[0] is None


def test_webp_is_not_read():
    data = encode(pattern(20, 30), "WEBP")
    assert read(data)[0] is None


@pytest.mark.parametrize("data,size", [
    (fake_png(20000, 20000), (20000, 20000)),
    (fake_png(2**31 - 1, 3), (3, 2**31 - 1)),
    (fake_jpeg(65535, 65000), (65000, 65535)),
    (fake_gif([(65535, 65535)]), (65535, 65535)),
    (fake_bmp(20000, -30000), (30000, 20000)),
], ids=["png", "png-widest", "jpeg", "gif", "bmp-top-down"])
def test_huge_headers_are_read_fast_without_decoding(data, size):
    read(data)  # traces the tf.function
    start = time.perf_counter()
    name, read_size, pixels = read(data)
    assert read_size == size and pixels == size[0] * size[1]
    assert time.perf_counter() - start < 0.5
