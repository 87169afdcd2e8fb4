"""Predicts label maps with an exported SavedModel or TFLite model.

    python -m deeplab_tf.cli.predict --saved_model=runs/demo/export --input=IMAGE_OR_DIR --output=DIR [--overwrite]
    python -m deeplab_tf.cli.predict --tflite=model.tflite [--tflite_threads=N] --input=IMAGE_OR_DIR --output=DIR \
        [--overwrite]

For each image writes `NAME.png` (uint8 class index per pixel) and `NAME_overlay.png` (the image
blended with the dataset's palette) into --output. A folder --input is read with its subfolders,
which --output mirrors (IN/sub/a.jpg -> OUT/sub/a.png). NAME is the file name without its
extension, or with it (`a.jpg.png`, `a.jpg_overlay.png`) for images whose outputs would otherwise
be another image's (a.jpg and a.png; a.png and a_overlay.png), so no output overwrites another.

A .tflite (`export.export_tflite`) runs in the LiteRT interpreter at its one input size: an image of
another size is resized to it (bilinear) and its scores resized back to the image before the argmax
(`deeplab_tf.evaluation.tflite_segmenter.TFLiteSegmenter.labels`); its palette is the one stored in
the file.

Nothing is written into the --input folder, into the SavedModel or over an input file: such an
--output is refused before any work. A file that exists where an output would go (the user's, or
this command's from an earlier run: the two are not told apart) is not replaced: the command is
refused before any work, naming it, unless --overwrite is given, which replaces the label PNGs and
overlays this run writes and nothing else. Every write is checked. An image that cannot be read,
predicted or written is reported with its file name and the reason, the others are done, the count
of images done is printed, and the exit status is 1. A --saved_model that is not a SavedModel
taking image bytes, a --tflite that is not a model of export.export_tflite, an --output that cannot
be created, an output file that exists (without --overwrite) or --tflite_threads without --tflite ends in
one `error:` line (status 2).
"""

import collections
import json
import os
import sys

from absl import flags

from deeplab_tf import onednn_weight_cache
from deeplab_tf.cli.flags import check_not_replacing, define_tflite_flags, error_text, make_output_dir, run


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def define_flags() -> None:
    """Defines the command's flags (only when run as a command: the module's functions are
    importable beside other entry points, whose flags share names, e.g. the exporters' --overwrite)."""
    flags.DEFINE_string("saved_model", None, "Folder of a SavedModel written by export.export_saved_model.")
    define_tflite_flags("A .tflite model written by export.export_tflite (instead of --saved_model).")
    flags.DEFINE_string("input", None, "An image file, or a folder whose images (subfolders included) are all processed.")
    flags.DEFINE_string("output", None, "Folder for the label PNGs and overlays (outside --input).")
    flags.DEFINE_bool("overwrite", False, "Replace label PNGs and overlays that exist in --output (e.g. from an earlier "
                      "run); without it, any existing one stops the command before any work.")
    flags.mark_flags_as_required(["input", "output"])
    flags.mark_flags_as_mutual_exclusive(["saved_model", "tflite"], required=True)


def list_inputs(path: str) -> list[str]:
    """Returns `path` if it is a file, else the sorted image files in folder `path` and its subfolders.

    Raises FileNotFoundError naming `path` when it does not exist or a folder holds no image.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path!r} does not exist")
    files = sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(path)
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise FileNotFoundError(f"--input folder {path!r} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def output_files(name: str) -> tuple[str, str]:
    """Returns the (label PNG, overlay PNG) file names written for an image of output name `name`."""
    return f"{name}.png", f"{name}_overlay.png"


def output_names(files: list[str], root: str) -> dict[str, str]:
    """Returns {file: its output name}: its path below `root` without the extension (`sub/a` for
    ROOT/sub/a.jpg), or with it (`sub/a.jpg`) for the files whose `output_files` another file's
    would otherwise be, or a folder of another's (ROOT/a.jpg's a.png and the a.png/ of
    ROOT/a.png/b.jpg). No two of `files` (image files, as `list_inputs` gives) share an output, and
    no output is a folder of others. Raises ValueError naming the file when even with its
    extension one of its outputs would be such a folder (a.jpg, a.png and the folder a.jpg.png/)."""
    names = {path: os.path.splitext(os.path.relpath(path, root))[0] for path in files}
    # Ends: names with their extension never share a file (an image's name does not end in
    # "_overlay"), so each round gives at least one more file its extension, or raises.
    while clashing := _clashing(names):
        full = {path: os.path.relpath(path, root) for path in clashing}
        if full.items() <= names.items():  # only outputs that are folders of others are left
            path = min(clashing)
            raise ValueError(f"cannot name the outputs of {path}: {' or '.join(output_files(names[path]))} is also "
                             f"a folder of outputs (an --input subfolder); rename the image or the folder")
        names.update(full)
    return names


def _clashing(names: dict[str, str]) -> set[str]:
    """Returns the files of `names` ({file: output name}) that share an output file with another,
    or whose output file is a folder of another's outputs."""
    writers, folders = collections.defaultdict(set), set()
    for path, name in names.items():
        for output in output_files(name):
            writers[output].add(path)
        parts = name.split(os.sep)[:-1]
        folders.update(os.path.join(*parts[:end]) for end in range(1, len(parts) + 1))
    shared = {path for paths in writers.values() if len(paths) > 1 for path in paths}
    return shared | {path for path, name in names.items() if folders.intersection(output_files(name))}


def check_outside_inputs(output_dir: str, targets: list[str], inputs: list[str], input_path: str,
                         saved_model: str) -> None:
    """Raises ValueError when `output_dir` or one of `targets` (its output files) is one of `inputs`
    or lies inside `input_path` (the --input file or folder) or the `saved_model` folder, links
    resolved; the message names the first such path and the input it would be written into."""
    protected = {os.path.realpath(path) for path in (input_path, saved_model, *inputs)}
    for path in (output_dir, *targets):
        real = os.path.realpath(path)
        inside = _first_ancestor_in(real, protected)
        if inside:
            what = "--output" if path == output_dir else "output file"
            raise ValueError(
                f"{what} {path!r} is {'' if real == inside else 'inside '}the input {inside!r}: predict never "
                f"writes into its inputs (--input, --saved_model); choose another --output"
            )


def _first_ancestor_in(path: str, folders: set[str]) -> str | None:
    """Returns `path` or the nearest folder above it that is in `folders`, or None."""
    while path not in folders:
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path


def load_serving(saved_model: str):
    """Returns the `serving_default` signature of the SavedModel in folder `saved_model`.

    Raises ValueError naming `saved_model` when it is not a readable SavedModel, or its
    `serving_default` does not take `image_bytes` one image at a time (a batch of any size or of
    1) and return `labels`, as an export of export.export_saved_model does by default.
    """
    import tensorflow as tf

    try:
        signatures = tf.saved_model.load(saved_model).signatures
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ValueError(f"--saved_model {saved_model!r} is not a readable SavedModel: {_first_line(error)}") from None
    serve = signatures.get("serving_default")
    if serve is None or "image_bytes" not in serve.structured_input_signature[1]:
        raise ValueError(
            f"--saved_model {saved_model!r} has no serving_default signature taking image_bytes "
            f"(export it with python -m export.export_saved_model, whose first --input_type is image_bytes)"
        )
    batch = serve.structured_input_signature[1]["image_bytes"].shape[0]
    if batch not in (None, 1):
        raise ValueError(f"--saved_model {saved_model!r} takes batches of exactly {batch} images; predict sends one "
                         f"at a time: export it without --batch_size (or with --batch_size=1)")
    if "labels" not in serve.structured_outputs:
        raise ValueError(f"--saved_model {saved_model!r}: its serving_default returns "
                         f"{', '.join(sorted(serve.structured_outputs))}, not labels: export it with labels "
                         f"among its --outputs (the default)")
    return serve


def load_tflite(path: str, num_threads: int | None = None):
    """Returns (serve, palette) of the .tflite `path`: serve(image_bytes=tf.string [1]) ->
    {"labels": int32 [1, H, W]} as a SavedModel's `serving_default` returns, each image decoded
    (RGB) and run by `TFLiteSegmenter.labels`; the palette stored in the file (else a fixed one).
    Raises ValueError naming `path` when it is not a TFLite model of export.export_tflite."""
    import tensorflow as tf

    from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter

    try:
        segmenter = TFLiteSegmenter(path, num_threads=num_threads)
    except (ValueError, ImportError) as error:  # ImportError: the `lite` extra is not installed
        raise ValueError(f"--tflite: {error}") from None

    def serve(image_bytes):
        image = tf.io.decode_image(image_bytes[0], channels=3, dtype=tf.uint8, expand_animations=False).numpy()
        return {"labels": tf.constant(segmenter.labels(image)[None])}

    return serve, (segmenter.metadata or {}).get("palette") or _default_palette()


def overlay(image, labels, palette, alpha: float = 0.5):
    """Returns uint8 [H,W,3]: `image` blended with the palette colour of each label (`alpha` = colour weight)."""
    import numpy as np

    colours = np.asarray(palette, np.float32)[np.clip(labels, 0, len(palette) - 1)]
    return np.clip((1 - alpha) * image.astype(np.float32) + alpha * colours, 0, 255).astype(np.uint8)


def predict_files(saved_model: str | None, input_path: str, output_dir: str, log=print, tflite: str | None = None,
                  tflite_threads: int | None = None, overwrite: bool = False) -> dict[str, str]:
    """Runs the export's `serving_default` (or the .tflite `tflite`, with `tflite_threads`
    interpreter threads) on each image of `input_path` (`list_inputs`) and writes its label PNG
    and overlay under `output_dir` (named by `output_names`).

    Returns {image: why it failed} for the images that could not be read, predicted or written
    (each also reported through `log`, as is the count of images done). Raises
    FileNotFoundError for a missing or empty input, and, before any image is read, FileExistsError
    for an output file that exists and `overwrite` is False (`flags.check_not_replacing`), OSError
    for an `output_dir` that cannot be created (`flags.make_output_dir`), and ValueError for an
    output that would be written into an input (`check_outside_inputs`) or a `saved_model` that
    `load_serving` refuses.
    """
    import tensorflow as tf

    files = list_inputs(input_path)
    root = input_path if os.path.isdir(input_path) else os.path.dirname(input_path)
    targets = {path: [os.path.join(output_dir, f) for f in output_files(name)]
               for path, name in output_names(files, root).items()}
    outputs = [t for pair in targets.values() for t in pair]
    check_outside_inputs(output_dir, outputs, files, input_path, tflite or saved_model)
    check_not_replacing(outputs, "--output", overwrite)
    if tflite:
        serve, palette = load_tflite(tflite, tflite_threads)
    else:
        serve = load_serving(saved_model)
        palette = _load_palette(saved_model)
    make_output_dir(output_dir, "--output")
    failed = {}
    for path in files:
        try:
            _predict_image(serve, palette, path, *targets[path])
        except (OSError, ValueError, tf.errors.OpError) as error:
            failed[path] = _first_line(error)
            log(f"failed {path}: {failed[path]}")
    log(f"Wrote the predictions of {len(files) - len(failed)} of {len(files)} images to {output_dir}"
        + (f"; {len(failed)} failed (above)" if failed else ""))
    return failed


def _predict_image(serve, palette, path: str, labels_file: str, overlay_file: str) -> None:
    """Writes the label PNG and the overlay of image file `path`; raises OSError or
    tf.errors.OpError saying why when it cannot be read, predicted or written."""
    import numpy as np
    import tensorflow as tf

    from deeplab_tf.evaluation import reports

    with open(path, "rb") as f:
        data = f.read()
    labels = serve(image_bytes=tf.constant([data]))["labels"][0].numpy()
    image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    reports.write_png(labels_file, labels.astype(np.uint8))
    reports.write_png(overlay_file, overlay(image, labels, palette))


def _first_line(error: Exception) -> str:
    """Returns the first line of what `error` says (`flags.error_text`: TensorFlow's context dropped)."""
    return error_text(error).splitlines()[0]


def _load_palette(saved_model: str) -> list:
    """Returns the export's palette from assets.extra/dataset_info.json, else a fixed 256-colour one."""
    path = os.path.join(saved_model, "assets.extra", "dataset_info.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)["palette"]
    return _default_palette()


def _default_palette() -> list:
    return [((37 * i) % 256, (101 * i) % 256, (173 * i) % 256) for i in range(256)]


def main(argv):
    del argv
    values = flags.FLAGS
    # This process only serves the SavedModel, whose weights never change. Set before TensorFlow
    # builds any op; said at the end (a refused command prints its one error line only).
    weight_cache = onednn_weight_cache.cache_served_weights() if values.saved_model else None
    failed = predict_files(values.saved_model, values.input, values.output, tflite=values.tflite,
                           tflite_threads=values.tflite_threads, overwrite=values.overwrite)
    if weight_cache:
        print(weight_cache[1])
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    run(main)
