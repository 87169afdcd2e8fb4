"""Predicts label maps with an exported SavedModel.

    python -m deeplab_tf.cli.predict --saved_model=runs/demo/export --input=IMAGE_OR_DIR --output=DIR

For each image writes `NAME.png` (uint8 class index per pixel) and `NAME_overlay.png` (the image
blended with the dataset's palette). Unreadable inputs are reported by file name and skipped; the
exit status is 1 if any input failed.
"""

import json
import os
import sys

from absl import flags

from deeplab_tf.cli.flags import run

flags.DEFINE_string("saved_model", None, "Folder of a SavedModel written by export.export_saved_model.")
flags.DEFINE_string("input", None, "An image file, or a folder whose images are all processed.")
flags.DEFINE_string("output", None, "Folder for the label PNGs and overlays.")
flags.mark_flags_as_required(["saved_model", "input", "output"])

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def list_inputs(path: str) -> list[str]:
    """Returns `path` if it is a file, else the sorted image files in folder `path`.

    Raises FileNotFoundError naming `path` when it does not exist or a folder holds no image.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    files = sorted(
        os.path.join(path, name) for name in os.listdir(path) if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise FileNotFoundError(f"--input folder {path!r} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def overlay(image, labels, palette, alpha: float = 0.5):
    """Returns uint8 [H,W,3]: `image` blended with the palette colour of each label (`alpha` = colour weight)."""
    import numpy as np

    colours = np.asarray(palette, np.float32)[np.clip(labels, 0, len(palette) - 1)]
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colours, 0, 255).astype(np.uint8)


def predict_files(saved_model: str, files: list[str], output_dir: str, log=print) -> list[str]:
    """Runs the export's `serving_default` on each file and writes label PNGs and overlays.

    Returns the list of files that failed (each reported through `log` with the reason).
    """
    import cv2
    import numpy as np
    import tensorflow as tf

    serve = tf.saved_model.load(saved_model).signatures["serving_default"]
    palette = _load_palette(saved_model)
    os.makedirs(output_dir, exist_ok=True)
    failed = []
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            with open(path, "rb") as f:
                data = f.read()
            labels = serve(image_bytes=tf.constant([data]))["labels"][0].numpy()
            image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        except (OSError, tf.errors.InvalidArgumentError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log(f"skipped {path}: cannot be read as an image ({reason})")
            failed.append(path)
            continue
        cv2.imwrite(os.path.join(output_dir, f"{stem}.png"), labels.astype(np.uint8))
        blended = overlay(image, labels, palette)
        cv2.imwrite(os.path.join(output_dir, f"{stem}_overlay.png"), cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
    log(f"Wrote {len(files) - len(failed)} predictions to {output_dir}" + (f"; {len(failed)} failed" if failed else ""))
    return failed


def _load_palette(saved_model: str) -> list:
    """Returns the export's palette from assets.extra/dataset_info.json, else a fixed 256-colour one."""
    path = os.path.join(saved_model, "assets.extra", "dataset_info.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["palette"]
    return [((37 * i) % 256, (101 * i) % 256, (173 * i) % 256) for i in range(256)]


def main(argv):
    del argv
    values = flags.FLAGS
    failed = predict_files(values.saved_model, list_inputs(values.input), values.output)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
