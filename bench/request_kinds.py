"""Requests for the signatures of an export (`export.serving`): valid ones of every input type and
image format, and one of every invalid kind with the error it must give. `bench.serving_soak`
sends them from many threads; the export tests use them and the fabricated headers.

A fabricated header (`fake_png`, `fake_jpeg`, `fake_gif`, `fake_bmp`) claims any size in a few
bytes, with no pixel data: a decoder given one allocates the claimed image before it finds the
data missing, so only a check that reads the header first refuses it cheaply. Uses numpy, PIL
and TensorFlow only (the project is not imported), as a client would.
"""

import dataclasses
import io
import struct
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

IMAGE_FEATURE_KEY = "image/encoded"  # export.serving.IMAGE_FEATURE_KEY, as a client knows it


@dataclasses.dataclass(frozen=True)
class Request:
    """One request: `value` for the signature input `input` ("images", "image_bytes" or
    "examples"); `error` is None for a valid request, else a regular expression its
    InvalidArgumentError message must match."""

    name: str
    input: str
    value: object
    error: str | None = None

    def tensor(self) -> tf.Tensor:
        """Returns the value as sent: a tensor of its own dtype for "images", else tf.string."""
        return tf.constant(self.value) if self.input == "images" else tf.constant(self.value, tf.string)


def signature_taking(loaded, input_name: str):
    """Returns the signature of the SavedModel `loaded` whose input is `input_name`; KeyError if none."""
    for signature in loaded.signatures.values():
        if input_name in signature.structured_input_signature[1]:
            return signature
    raise KeyError(f"no signature takes {input_name!r}: {sorted(loaded.signatures)}")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """Returns a PNG chunk: length, `kind`, `body`, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def fake_png(width: int, height: int) -> bytes:
    """Returns a PNG signature and IHDR claiming width x height (8-bit RGB), an empty IDAT, IEND."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b"")


def fake_jpeg(width: int, height: int, before: bytes = b"") -> bytes:
    """Returns SOI, `before` (segments or stray bytes), a baseline SOF0 claiming width x height
    (3 components), EOI."""
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + before + frame + b"\xff\xd9"


def fake_gif(frames, screen=(1, 1)) -> bytes:
    """Returns a GIF89a with a 2-colour global table, a logical screen `screen` (width, height)
    and an image descriptor per (width, height) of `frames`, each with 2 bytes of LZW data."""
    data = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00" * 6
    data += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # a graphic control extension
    for width, height in frames:
        data += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02" + b"\x02\x4c\x01" + b"\x00"
    return data + b"\x3b"


def fake_bmp(width: int, height: int) -> bytes:
    """Returns a BITMAPFILEHEADER and BITMAPINFOHEADER claiming width x height (negative height:
    rows top-down), 24 bits per pixel, no pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def encode(image: np.ndarray, fmt: str, **kwargs) -> bytes:
    """Returns uint8 [H, W, 3] `image` encoded by PIL as `fmt` ("PNG", "JPEG", "GIF", "BMP", ...)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def example(data: bytes, key: str = IMAGE_FEATURE_KEY) -> bytes:
    """Returns a serialized tf.train.Example holding `data` under the bytes feature `key`."""
    feature = {key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def scene(height: int, width: int, seed: int) -> np.ndarray:
    """Returns a uint8 [height, width, 3] image: a few flat rectangles on noise, so the labels vary."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 64, (height, width, 3), dtype=np.uint8)
    for _ in range(4):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top : top + height // 2, left : left + width // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
    return image


def valid_requests(seed: int = 0) -> list:
    """Returns valid requests of every input type and image format, sizes from 1 x 1 to 64 x 96."""
    image, other = scene(48, 64, seed), scene(48, 64, seed + 1)
    return [
        Request("png", "image_bytes", [encode(image, "PNG")]),
        Request("png batch", "image_bytes", [encode(image, "PNG"), encode(other, "PNG")]),
        Request("jpeg", "image_bytes", [encode(other, "JPEG", quality=90)]),
        Request("gif", "image_bytes", [encode(image, "GIF")]),
        Request("bmp", "image_bytes", [encode(other, "BMP")]),
        Request("gray png", "image_bytes", [encode(image[:, :, 0], "PNG")]),
        Request("tensor", "images", np.stack([image, other])),
        Request("tensor 64x96", "images", scene(64, 96, seed + 2)[None]),
        Request("tensor 1x1", "images", image[None, :1, :1]),
        Request("tensor 5x40", "images", image[None, :5, :40]),
        Request("tiny png 3x2", "image_bytes", [encode(other[:3, :2], "PNG")]),
        Request("example", "examples", [example(encode(image, "PNG"))]),
    ]


def invalid_requests(max_pixels: int = 2**23) -> list:
    """Returns one request of every invalid kind, for an export with a dynamic batch and input size
    and `max_pixels` (the export's --max_pixels)."""
    png = encode(scene(8, 8, 0), "PNG")
    side = int(max_pixels**0.5) + 1  # a square image just over the limit
    zeros = np.zeros
    return [
        Request("rank 3 tensor", "images", zeros((32, 32, 3), np.uint8), r"images must be uint8 \[N, H, W, 3\].*got shape \[32 32 3\]"),
        Request("rank 2 tensor", "images", zeros((32, 32), np.uint8), r"must be uint8 \[N, H, W, 3\].*got shape \[32 32\]"),
        Request("rank 5 tensor", "images", zeros((1, 1, 32, 32, 3), np.uint8), r"must be uint8 .*got shape \[1 1 32 32 3\]"),
        Request("rank 0 tensor", "images", np.uint8(7), r"must be uint8 .*got shape \[\]"),
        Request("1 channel", "images", zeros((1, 32, 32, 1), np.uint8), r"3 channels; got shape \[1 32 32 1\]"),
        Request("4 channels", "images", zeros((1, 32, 32, 4), np.uint8), r"3 channels; got shape \[1 32 32 4\]"),
        Request("0 channels", "images", zeros((1, 32, 32, 0), np.uint8), r"3 channels; got shape \[1 32 32 0\]"),
        Request("float32 tensor", "images", zeros((1, 32, 32, 3), np.float32), r"uint8"),
        Request("empty batch tensor", "images", zeros((0, 32, 32, 3), np.uint8), r"images holds no image"),
        Request("0 rows", "images", zeros((1, 0, 32, 3), np.uint8), r"must not be empty: got shape \[1 0 32 3\]"),
        Request("0 columns", "images", zeros((1, 32, 0, 3), np.uint8), r"must not be empty: got shape \[1 32 0 3\]"),
        Request("huge tensor", "images", zeros((1, side, side, 3), np.uint8), rf"request too large: 1 image\(s\) of {side} x {side}"),
        Request("too thin tensor", "images", zeros((1, 1, max_pixels // 8, 3), np.uint8), r"request too large: .*computed at 16 x"),
        Request("not an image", "image_bytes", [b"not an image"], r"Unknown image file format: image_bytes\[0\] \(12 bytes\)"),
        Request("empty bytes", "image_bytes", [b""], r"image_bytes\[0\] \(0 bytes\) is not a JPEG, PNG, GIF or BMP"),
        Request("webp", "image_bytes", [encode(scene(8, 8, 0), "WEBP")], r"is not a JPEG, PNG, GIF or BMP"),
        Request("second not an image", "image_bytes", [png, b"GIF"], r"image_bytes\[1\] \(3 bytes\)"),
        Request("truncated png header", "image_bytes", [png[:20]], r"cannot read the image size from its PNG header"),
        Request("jpeg without frame", "image_bytes", [b"\xff\xd8\xff\xd9"], r"cannot read the image size from its JPEG header"),
        Request("truncated png data", "image_bytes", [png[:-20]], r"PNG|png"),
        Request("empty png", "image_bytes", [fake_png(0, 5)], r"image_bytes\[0\] is an empty image: its header says 5 x 0"),
        Request("huge png", "image_bytes", [fake_png(20000, 20000)], r"request too large: 1 image\(s\) of 20000 x 20000"),
        Request("huge jpeg", "image_bytes", [fake_jpeg(60000, 50000)], r"request too large: 1 image\(s\) of 50000 x 60000"),
        Request("huge gif", "image_bytes", [fake_gif([(65535, 65535)])], r"request too large: 1 image\(s\) of 65535 x 65535"),
        Request("huge bmp", "image_bytes", [fake_bmp(20000, -20000)], r"request too large: 1 image\(s\) of 20000 x 20000"),
        Request("gif of many frames", "image_bytes", [fake_gif([(100, 100)] * (max_pixels // 10000 + 1))],
                r"request too large: .*decoding holds"),
        Request("mixed sizes", "image_bytes", [png, encode(scene(8, 12, 0), "PNG")],
                r"same height and width: image_bytes\[0\] is 8 x 8, image_bytes\[1\] is 8 x 12"),
        Request("too many images", "image_bytes", [fake_png(1000, 1000)] * (max_pixels // 10**6 + 1), r"request too large"),
        Request("empty batch bytes", "image_bytes", [], r"image_bytes holds no image"),
        Request("scalar bytes", "image_bytes", png, r"image_bytes must be a vector \[N\] of encoded images; got shape \[\]"),
        Request("matrix of bytes", "image_bytes", [[png]], r"image_bytes must be a vector .*got shape \[1 1\]"),
        Request("example without image", "examples", [example(png, key="image/other")], IMAGE_FEATURE_KEY),
        Request("huge png in example", "examples", [example(fake_png(20000, 20000))], r"request too large"),
        Request("scalar example", "examples", example(png), r"examples must be a vector \[N\] of serialized"),
    ]
