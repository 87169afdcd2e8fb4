"""Evaluates a checkpoint, a SavedModel or a TFLite model of an experiment on a split and writes its reports.

    python -m deeplab_tf.cli.evaluate --model_dir=runs/camvid [--experiment=NAME --override=...] \\
        [--checkpoint=PATH | --saved_model=DIR | --tflite=FILE [--tflite_threads=N]] \\
        [--dataset=NAME] [--split=val] [--output_stride=8] \\
        [--scales=0.5,0.75,1.0,1.25,1.5,1.75] [--flip] [--fusion=mean|max] \\
        [--tile_size=513,513] [--tile_overlap=128] [--trimap_widths=1,2,...] [--crf] \\
        [--num_visualizations=8] [--output_dir=DIR]

Writes to --output_dir (default MODEL_DIR/SPLIT): `eval.json` (every metric, the resolved
experiment, the model and data identity), `report.md`, `confusion.png`, `trimap.png` (when trimap
widths are set) and `worst/NN_<name>.png` overlays (image | ground truth | prediction | errors);
the trimap.png and overlays an earlier evaluation left there are removed first.
Flags that are evaluation settings override the experiment's `eval` section, so eval.json records
exactly what ran. A training run's model dir (or a checkpoint in it) brings its own experiment,
read from its config.json: --experiment and the training's --override's need not be repeated
(an override that contradicts the run is refused, see `deeplab_tf.cli.flags.RUN_SETTABLE_FIELDS`).
A --dataset of other classes than the model's, or a SavedModel or TFLite model predicting another
number of classes, is refused before anything is evaluated, as are a split the dataset does not
have (naming those it has), two models (--checkpoint, --saved_model, --tflite) and a flag that
would have no effect (--crf_params or --crf_backend with the CRF off, --tile_overlap without
tiles, --fusion with one pass, --tflite_threads without --tflite); the output folder is made only
when the reports are written, so a refused or failed run leaves none behind. A TFLite model
(`export.export_tflite`, with a `probabilities` output) runs in the LiteRT interpreter at its one input size: images of
another size are resized to it and its probabilities back (`evaluation.tflite_segmenter`).
"""

import dataclasses
import glob
import os

from absl import flags

from deeplab_tf import onednn_weight_cache
from deeplab_tf.cli.flags import (check_flag_effective, check_output_dir, define_experiment_flags, define_tflite_flags,
                                  make_output_dir, model_to_read, refuse_flag_unless, resolve_experiment, run)

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Training folder (its latest checkpoint is evaluated; default output base).")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; defaults to the latest in --model_dir.")
flags.DEFINE_string("saved_model", None, "Evaluate this SavedModel (exported by this project) instead of a checkpoint.")
define_tflite_flags("Evaluate this .tflite model (written by export.export_tflite) instead of a checkpoint.")
flags.DEFINE_string("dataset", None, "Dataset to evaluate on; defaults to the experiment's data.dataset.")
flags.DEFINE_string("split", None, "Split to evaluate; defaults to the experiment's data.eval_split.")
flags.DEFINE_integer("output_stride", None, "Output stride to evaluate at (checkpoints only); default eval.output_stride.")
flags.DEFINE_list("scales", None, "Test-time input scales, e.g. 0.5,0.75,1.0; default eval.scales.")
flags.DEFINE_bool("flip", None, "Add left-right flipped passes; default eval.flip.")
flags.DEFINE_enum("fusion", None, ["mean", "max"], "Fusion of the passes; default eval.fusion.")
flags.DEFINE_list("tile_size", None, "Window height,width for tiled inference (0,0 = off); default eval.tile_size.")
flags.DEFINE_integer("tile_overlap", None, "Overlap of the windows in pixels; default eval.tile_overlap.")
flags.DEFINE_list("trimap_widths", None, "Boundary band widths in pixels ('' = off); default eval.trimap_widths (1..40).")
flags.DEFINE_bool("crf", None, "Apply the dense CRF and report before/after; default eval.crf.")
flags.DEFINE_string("crf_params", None, "crf_params.json from deeplab_tf.cli.crf_search; default MODEL_DIR/crf_params.json if present.")
flags.DEFINE_enum("crf_backend", "tensorflow", ["tensorflow", "pydensecrf"], "Dense CRF implementation.")
flags.DEFINE_integer("num_visualizations", 0, "Write overlays of this many images with the lowest mIoU.", lower_bound=0)
flags.DEFINE_string("output_dir", None, "Folder for the reports; defaults to MODEL_DIR/SPLIT.")
# One model is evaluated: a second one given beside it would not be read.
for _model in ("saved_model", "tflite"):
    refuse_flag_unless("checkpoint", lambda values, model=_model: not values[model].value,
                       f"--{_model} is the model evaluated, so the checkpoint would not be read: give one of the two "
                       f"(--model_dir=RUN takes the experiment of a training run)")
refuse_flag_unless("tflite", lambda values: not values.saved_model,
                   "give --saved_model or --tflite, not both: one model is evaluated")
refuse_flag_unless("output_stride", lambda values: not (values.saved_model and values.output_stride),
                   "needs a checkpoint: the SavedModel of --saved_model is fixed at its export's stride")


def eval_overrides(values, experiment):
    """Returns `experiment` with the evaluation flags that were given applied to its sections.
    Raises ValueError naming a list flag that does not parse, a --dataset of other classes, or a
    flag that would have no effect in the evaluation so set up (`check_effective`)."""
    given = {
        "output_stride": values.output_stride,
        "scales": list_flag("scales", values.scales, float),
        "flip": values.flip,
        "fusion": values.fusion,
        "tile_size": list_flag("tile_size", values.tile_size, int),
        "tile_overlap": values.tile_overlap,
        "trimap_widths": list_flag("trimap_widths", values.trimap_widths, int),
        "crf": values.crf,
    }
    evaluation = dataclasses.replace(experiment.eval, **{k: v for k, v in given.items() if v is not None})
    if values.dataset:
        check_same_classes(values.dataset, experiment)
    data = {k: v for k, v in (("dataset", values.dataset), ("eval_split", values.split)) if v}
    check_effective(evaluation)
    return dataclasses.replace(experiment, eval=evaluation, data=dataclasses.replace(experiment.data, **data))


def check_effective(evaluation) -> None:
    """Raises ValueError (`check_flag_effective`) for a flag given on the command line that the
    evaluation settings `evaluation` (the experiment's, with the flags applied) would ignore:
    --crf_params or --crf_backend with the CRF off, --tile_overlap without tiles, --fusion with a
    single pass."""
    for name in ("crf_params", "crf_backend"):
        check_flag_effective(name, evaluation.crf, f"the CRF is off (no --crf, and eval.crf of the experiment is "
                                                   f"false), so it would not be used: add --crf or drop --{name}")
    check_flag_effective("tile_overlap", tuple(evaluation.tile_size) != (0, 0),
                         "tiled inference is off (eval.tile_size is 0,0), so there is no overlap: give "
                         "--tile_size=HEIGHT,WIDTH too, or drop --tile_overlap")
    check_flag_effective("fusion", len(evaluation.scales) > 1 or evaluation.flip,
                         f"one pass is made (--scales={','.join(map(str, evaluation.scales))}, no --flip), so "
                         f"nothing is fused: give several --scales or --flip too, or drop --fusion")


def list_flag(name: str, items: list[str] | None, kind: type) -> tuple | None:
    """Returns the items of list flag --`name` converted by `kind` (int or float), None when the
    flag is unset. Raises ValueError naming the flag and its value when an item does not parse."""
    if items is None:
        return None
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        example = "1,2,4" if kind is int else "0.75,1.0,1.25"
        raise ValueError(f"--{name}={','.join(items)!r} is not a list of {kind.__name__}s, e.g. {example}") from None


def check_same_classes(dataset: str, experiment) -> None:
    """Raises ValueError when `dataset` has other classes than the dataset `experiment`'s model
    was built for (its checkpoint could not be restored, a SavedModel's scores would be misread)."""
    from deeplab_tf.data import dataset_info

    model_classes, classes = dataset_info(experiment.data.dataset).class_names, dataset_info(dataset).class_names
    if classes != model_classes:
        raise ValueError(
            f"--dataset={dataset} has {len(classes)} classes ({', '.join(classes)}); the model of {experiment.name} "
            f"predicts the {len(model_classes)} of {experiment.data.dataset} ({', '.join(model_classes)})"
        )


def check_saved_model_classes(scorer, path: str, info) -> None:
    """Raises ValueError when the SavedModel `scorer` (`saved_model_scorer` of `path`) predicts
    another number of classes than `info` (the experiment's dataset) holds."""
    outputs = scorer.saved_model.signatures["serving_image_tensor"].structured_outputs
    probabilities = outputs["probabilities"].shape[-1]
    if probabilities != info.num_classes:
        raise ValueError(
            f"SavedModel {path} predicts {probabilities} classes; {info.name} has {info.num_classes} "
            f"({', '.join(info.class_names)}): it was exported from another experiment"
        )


def build_scorer(values, experiment):
    """Returns (scorer, model identity, DatasetInfo): the SavedModel's or the restored checkpoint's
    scorer (`deeplab_tf.evaluation.inference`), what was evaluated, and the dataset's classes."""
    from deeplab_tf.assembly import assemble
    from deeplab_tf.data import dataset_info
    from deeplab_tf.training.checkpoints import restore_model
    from deeplab_tf.evaluation.inference import keras_scorer, saved_model_scorer

    if values.tflite:
        return tflite_scorer(values, experiment)
    if values.saved_model:  # --output_stride is refused with it: the export has its own
        scorer, info = saved_model_scorer(values.saved_model), dataset_info(experiment.data.dataset)
        check_saved_model_classes(scorer, values.saved_model, info)
        return scorer, {"source": os.path.abspath(values.saved_model), "kind": "saved_model",
                        "fingerprint": tf_fingerprint(values.saved_model)}, info
    if not (values.checkpoint or values.model_dir):
        raise ValueError("Give --model_dir (or --checkpoint) or --saved_model")
    parts = assemble(experiment, output_stride=experiment.eval.output_stride)
    prefix = restore_model(parts.model, values.checkpoint or values.model_dir)
    output_stride = experiment.eval.output_stride or experiment.model.output_stride
    return keras_scorer(parts.model, parts.normalize), {"source": prefix, "kind": "checkpoint",
                                                        "output_stride": output_stride}, parts.info


def tflite_scorer(values, experiment):
    """Returns (scorer, model identity, DatasetInfo) of the .tflite --tflite (`build_scorer`).
    Raises ValueError for an --output_stride other than the file's given with it, a file of another
    number of classes than the experiment's dataset, one without a probabilities output, or a
    missing LiteRT runtime."""
    import hashlib

    from deeplab_tf.data import dataset_info
    from deeplab_tf.evaluation.tflite_segmenter import TFLiteSegmenter

    try:
        segmenter = TFLiteSegmenter(values.tflite, num_threads=values.tflite_threads)
    except ImportError as error:  # the `lite` extra is not installed
        raise ValueError(str(error)) from None
    info = dataset_info(experiment.data.dataset)
    metadata = segmenter.metadata or {}
    if values.output_stride and values.output_stride != metadata.get("output_stride"):
        raise ValueError(f"--output_stride={values.output_stride} needs a checkpoint: {values.tflite} is fixed at "
                         f"its export's stride ({metadata.get('output_stride', 'unknown')})")
    if segmenter.num_classes is not None and segmenter.num_classes != info.num_classes:
        raise ValueError(
            f"{values.tflite} predicts {segmenter.num_classes} classes; {info.name} has {info.num_classes} "
            f"({', '.join(info.class_names)}): it was exported from another experiment"
        )
    scorer = segmenter.scorer()  # ValueError for a file without probabilities
    with open(values.tflite, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return scorer, {"source": os.path.abspath(values.tflite), "kind": "tflite", "sha256": digest,
                    "precision": metadata.get("precision"), "output_stride": metadata.get("output_stride"),
                    "input_size": list(segmenter.input_size)}, info


def tf_fingerprint(export_dir: str) -> str:
    """Returns the SavedModel's checksum (its fingerprint.pb) as text."""
    import tensorflow as tf

    return str(tf.saved_model.experimental.read_fingerprint(export_dir).saved_model_checksum)


def crf_hook(values, experiment):
    """Returns (the CRF `Refine` hook, its params as a dict), or (None, None) when CRF is off."""
    if not experiment.eval.crf:
        return None, None
    from deeplab_tf import crf
    from deeplab_tf.evaluation.evaluator import crf_refiner

    path = values.crf_params or (values.model_dir and os.path.join(values.model_dir, crf.PARAMS_FILE))
    params = crf.load_params(path) if path and (values.crf_params or os.path.exists(path)) else crf.DenseCRFParams()
    return crf_refiner(params, values.crf_backend), {**dataclasses.asdict(params), "file": path, "backend": values.crf_backend}


def main(argv):
    del argv
    from deeplab_tf.data import get_source
    from deeplab_tf.data.pipeline import build_eval_dataset
    from deeplab_tf.evaluation.evaluator import WorstImages, evaluate, format_table, progress_bar
    from deeplab_tf.evaluation.inference import multi_scale, padded, tiled
    from deeplab_tf.validation import validate

    values = flags.FLAGS
    # Before TensorFlow builds any op; said once the checks have passed (a refusal is one line).
    weight_cache = onednn_weight_cache.cache_served_weights() if values.saved_model else None
    experiment = eval_overrides(values, resolve_experiment(model_to_read(values.model_dir, values.checkpoint)))
    validate(experiment)  # the evaluation flags too, before anything is read or built
    split, settings = experiment.data.eval_split, experiment.eval
    output_dir = values.output_dir or (values.model_dir and os.path.join(values.model_dir, split))
    if not output_dir:
        raise ValueError("Give --output_dir (there is no --model_dir to write into)")
    check_output_dir(output_dir, "--output_dir")  # made when the reports are written, so a failed run leaves none
    scorer, model_identity, info = build_scorer(values, experiment)
    if weight_cache:  # this process only serves the SavedModel: its weights never change
        print(weight_cache[1])
    if model_identity["kind"] == "checkpoint":  # an export pads inside its graph
        scorer = padded(scorer, settings.pad_to_size, settings.pad_value)
    # Windows on the output-stride grid (sizes rounded down to its multiples): see `tiled`.
    stride = settings.output_stride or experiment.model.output_stride
    scorer = multi_scale(tiled(scorer, settings.tile_size, settings.tile_overlap, stride=stride),
                         settings.scales, settings.flip, settings.fusion)
    refine, crf_params = crf_hook(values, experiment)
    dataset = build_eval_dataset(experiment.data, split, lambda pixels: pixels, batch_size=settings.batch_size)
    total = max(int(get_source(experiment.data).examples(split).cardinality()), 0)  # 0 = unknown
    worst = WorstImages(values.num_visualizations)
    results = evaluate(lambda batch: scorer(batch["pixels"]), dataset, info, refine=refine,
                       trimap_widths=settings.trimap_widths, worst=worst, progress=progress_bar(total))
    print(format_table(results))
    results.update(
        experiment=experiment.name,
        config=experiment.to_dict(),
        model=model_identity,
        data={"dataset": experiment.data.dataset, "data_dir": experiment.data.data_dir, "split": split,
              "max_examples": experiment.data.max_examples, "names_sha1": results.pop("names_sha1")},
        crf=crf_params,
        paper={"miou": experiment.paper_miou, "source": experiment.paper_source},
        worst_images=[{"name": e["name"], "miou": e["miou"]} for e in worst.entries()],
    )
    write_reports(output_dir, results, worst, info)
    print(f"Wrote {output_dir}/eval.json, report.md, confusion.png"
          + (", trimap.png" if results.get("trimap") else "") + (f", {len(worst.entries())} overlays in worst/" if worst.entries() else ""))


def write_reports(output_dir: str, results: dict, worst, info) -> None:
    """Writes eval.json, report.md, confusion.png, trimap.png and the worst-image overlays into the
    folder `output_dir` (made if needed, `make_output_dir`), after removing those an earlier
    evaluation left there (`remove_earlier_pictures`)."""
    from deeplab_tf.evaluation import reports

    make_output_dir(output_dir, "--output_dir")
    remove_earlier_pictures(output_dir)
    reports.write_json(os.path.join(output_dir, "eval.json"), results)
    with open(os.path.join(output_dir, "report.md"), "w") as f:
        f.write(reports.markdown_report(results))
    reports.write_png(os.path.join(output_dir, "confusion.png"),
                      reports.confusion_image(results["confusion_matrix"], results["class_names"]))
    if results.get("trimap"):
        trimap = results["trimap"]
        series = {"pixel accuracy": trimap["pixel_accuracy"], "mIoU": trimap["miou"]}
        if results.get("before_crf"):
            before = results["before_crf"]["trimap"]
            series = {"mIoU (no CRF)": before["miou"], "mIoU (CRF)": trimap["miou"],
                      "accuracy (no CRF)": before["pixel_accuracy"], "accuracy (CRF)": trimap["pixel_accuracy"]}
        reports.write_png(os.path.join(output_dir, "trimap.png"),
                          reports.curve_image(trimap["widths"], series, "Accuracy in a band around boundaries"))
    for rank, entry in enumerate(worst.entries()):
        stem = os.path.splitext(os.path.basename(entry["name"]))[0]
        reports.write_png(os.path.join(output_dir, "worst", f"{rank:02d}_{stem}.png"),
                          reports.overlay_image(entry["pixels"], entry["label"], entry["prediction"], info.palette,
                                                info.ignore_label))


def remove_earlier_pictures(output_dir: str) -> None:
    """Removes the pictures an earlier evaluation wrote into `output_dir` that this one may not
    replace (trimap.png when trimaps are off now, overlays worst/NN_<name>.png beyond this one's
    count or of other images), so none is read beside the new numbers. Other files are left."""
    stale = [os.path.join(output_dir, "trimap.png"), *glob.glob(os.path.join(output_dir, "worst", "[0-9][0-9]_*.png"))]
    for path in stale:
        if os.path.isfile(path):
            os.remove(path)


if __name__ == "__main__":
    run(main)
