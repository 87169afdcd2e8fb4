"""Serving signatures: decoding, normalisation and resizing inside the graph, standard ops only.

Signatures (what TF Serving and `tf.saved_model.load(...).signatures[...]` see):
- `serving_default`: `image_bytes` tf.string [N] (JPEG, PNG, BMP or GIF; all images of one request
  must have the same height and width, otherwise the request fails with an InvalidArgumentError
  saying so) -> `labels` int32 [N, H, W] at the input resolution.
- `serving_image_tensor`: `images` uint8 [N, H, W, 3] -> `labels` int32 [N, H, W] and
  `probabilities` float32 [N, H, W, C].
"""

import keras
import tensorflow as tf

MIXED_SIZES_MESSAGE = "serving_default: all images of one request must have the same height and width"


def decode_images(image_bytes):
    """Decodes a tf.string [N] batch of encoded images into uint8 [N, H, W, 3].

    Grayscale is repeated to RGB, an alpha channel dropped. Fails with an InvalidArgumentError
    for an empty batch, undecodable bytes, or images of different sizes (`MIXED_SIZES_MESSAGE`).
    """
    tf.debugging.assert_positive(tf.size(image_bytes), message="image_bytes holds no image")

    def decode(data):
        return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)

    first_size = tf.shape(decode(image_bytes[0]))[:2]

    def decode_same_size(data):
        image = decode(data)
        check = tf.debugging.assert_equal(tf.shape(image)[:2], first_size, message=MIXED_SIZES_MESSAGE)
        with tf.control_dependencies([check]):
            return tf.identity(image)

    return tf.map_fn(decode_same_size, image_bytes, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def build_export_archive(model: keras.Model, normalize) -> keras.export.ExportArchive:
    """Returns an ExportArchive tracking `model` with the `serving_default` and
    `serving_image_tensor` endpoints described in this module's docstring.

    `normalize` maps float32 pixels 0..255 to the model input (the backbone's normaliser).
    """

    def predict(images):
        logits = model(normalize(tf.cast(images, tf.float32)), training=False)
        return tf.argmax(logits, axis=-1, output_type=tf.int32), tf.nn.softmax(logits, axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes):
        labels, _ = predict(decode_images(image_bytes))
        return {"labels": labels}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_image_tensor(images):
        labels, probabilities = predict(images)
        return {"labels": labels, "probabilities": probabilities}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_image_bytes)
    archive.add_endpoint("serving_image_tensor", serve_image_tensor)
    return archive
