"""Runs a LiteRT (TFLite) model written by `export.export_tflite` with the `ai_edge_litert`
interpreter (the `lite` extra: `pip install -e ".[lite]"`).

The file's `serving_default` signature takes `images` uint8 [1, H, W, 3] (RGB 0..255, one fixed
size) and returns some of `labels` int32 [1, H, W], `probabilities` float32 [1, H, W, C] and
`logits` float32 [1, H, W, C]. The exporter stores what it exported (experiment, classes, palette,
precision, input size) as JSON in the flatbuffer's metadata
(`deeplab_tf.pretrained.tflite_file.read_export_metadata`).

`TFLiteSegmenter(path)(image)` runs one image of exactly the model's size and dtype and raises
ValueError naming the file, the expected and the given shape and dtype otherwise, before the
interpreter sees it. `scorer()` makes an evaluation scorer (`deeplab_tf.evaluation.inference`)
that resizes images of another size to the model's (bilinear) and its probabilities back, as a
SavedModel exported with `--input_size` does.

Example:
```python
segmenter = TFLiteSegmenter("model.tflite", num_threads=2)
labels = segmenter(image)["labels"][0]          # image: uint8 [H, W, 3] or [1, H, W, 3]
```
"""

import numpy as np
import tensorflow as tf

from deeplab_tf.pretrained.tflite_file import litert_interpreter, read_export_metadata

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUTS = ("labels", "probabilities", "logits")


class TFLiteSegmenter:
    """A TFLite model of `export.export_tflite`, loaded into the LiteRT interpreter.

    Args:
        path: str. The .tflite file.
        num_threads: int or None. Interpreter threads; None = the interpreter's default.
        delegates: bool. Keep the interpreter's default delegate (XNNPACK). False runs the
            reference builtin kernels. Defaults to True.

    Attributes: `input_size` (height, width), `outputs` (names the file returns), `num_classes`
    (None for a labels-only file), `metadata` (`tflite_file.read_export_metadata`, None for a file of
    another exporter).
    Raises ValueError (one line naming `path`) for a file that is not a TFLite model with a
    `serving_default` signature taking uint8 `images` [1, H, W, 3].
    """

    def __init__(self, path: str, num_threads: int | None = None, delegates: bool = True):
        self.path = path
        self.metadata = read_export_metadata(path)  # also: ValueError for a missing or non-TFLite file
        self.interpreter = litert_interpreter(path, num_threads=num_threads, delegates=delegates)
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures or signatures[SIGNATURE]["inputs"] != [INPUT_NAME]:
            raise ValueError(f"{path} has no {SIGNATURE} signature taking {INPUT_NAME!r} (signatures: {signatures}); "
                             "export it with python -m export.export_tflite")
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        detail = self.runner.get_input_details()[INPUT_NAME]
        shape, self.input_dtype = tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or self.input_dtype != np.uint8:
            raise ValueError(f"{path}: input {INPUT_NAME!r} is {self.input_dtype} {list(shape)}, "
                             "not uint8 [1, H, W, 3] as export.export_tflite writes")
        self.input_shape = shape
        self.input_size = shape[1:3]
        output_details = self.runner.get_output_details()
        self.outputs = tuple(name for name in OUTPUTS if name in output_details)
        scores = [output_details[name]["shape"][-1] for name in ("probabilities", "logits") if name in output_details]
        self.num_classes = int(scores[0]) if scores else None

    def check(self, images: np.ndarray) -> np.ndarray:
        """Returns `images` as uint8 [1, H, W, 3] (a [H, W, 3] image gains the batch axis) when it
        is exactly the model's input; else raises ValueError naming the file and both shapes/dtypes."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.shape != self.input_shape or images.dtype != np.uint8:
            raise ValueError(
                f"{self.path} takes uint8 images of {self.input_size[0]}x{self.input_size[1]}x3 "
                f"(input {list(self.input_shape)}); got {images.dtype} {list(images.shape)}")
        return images

    def __call__(self, images) -> dict:
        """Returns {output name: np.ndarray} of one image, uint8 [H, W, 3] or [1, H, W, 3] of the
        model's size (`check`)."""
        return self.runner(**{INPUT_NAME: self.check(images)})

    def labels(self, image) -> np.ndarray:
        """Returns the class map int32 [h, w] of one RGB image uint8 [h, w, 3] of any size. An
        image of the model's size is run as it is (its `labels` output, else the argmax of its
        scores); another size is resized bilinearly to the model's, and the scores (`probabilities`
        or `logits`) resized bilinearly back before the argmax, or, for a labels-only file, the
        labels resized back by nearest neighbour. Raises ValueError for an image that is not
        uint8 [h, w, 3]."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(f"{self.path} takes RGB images uint8 [H, W, 3]; got {image.dtype} {list(image.shape)}")
        size = image.shape[:2]
        if size != self.input_size:
            resized = tf.image.resize(tf.cast(image[None], tf.float32), self.input_size, method="bilinear")
            image = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8).numpy()[0]
        results = self(image)
        scores = next((results[name] for name in ("probabilities", "logits") if name in results), None)
        if size == self.input_size:
            return results["labels"][0] if "labels" in results else np.argmax(scores[0], axis=-1).astype(np.int32)
        if scores is not None:
            return np.argmax(tf.image.resize(scores, size, method="bilinear").numpy()[0], axis=-1).astype(np.int32)
        return tf.image.resize(results["labels"][..., None], size, method="nearest").numpy()[0, ..., 0]

    def scorer(self):
        """Returns a scorer (`deeplab_tf.evaluation.inference`): RGB pixels [B, h, w, 3] (uint8, or
        float rounded to uint8 as `saved_model_scorer` does) -> float32 probabilities [B, h, w, C],
        one interpreter call per image. Images of another size are resized bilinearly to the model's
        and their probabilities back. Raises ValueError when the file has no `probabilities` output."""
        if "probabilities" not in self.outputs:
            raise ValueError(f"{self.path} returns {', '.join(self.outputs)}, not probabilities: "
                             "export it with --outputs=labels,probabilities to evaluate it")

        def score(pixels):
            pixels = tf.convert_to_tensor(pixels)
            size = tuple(int(side) for side in pixels.shape[1:3])
            if size != self.input_size:
                pixels = tf.image.resize(tf.cast(pixels, tf.float32), self.input_size, method="bilinear")
            if pixels.dtype != tf.uint8:
                pixels = tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)
            probabilities = np.concatenate([self(image[None])["probabilities"] for image in pixels.numpy()])
            if size != self.input_size:
                probabilities = tf.image.resize(probabilities, size, method="bilinear")
            return tf.convert_to_tensor(probabilities, tf.float32)

        return score
