"""How much a class-weighted loss costs in mIoU: evaluates a model trained with
`train.class_weighting=median_frequency` with its probabilities divided by the class weights to
a power alpha (argmax of log p - alpha log w). alpha 0 is the model as trained; alpha 1 undoes
the weighting's prior on the posterior (a weighted cross-entropy's minimiser is p(c|x) w_c / Z).

    python -m bench.class_weight_prior --experiment=camvid_mnv2_voc_transfer \\
        --checkpoint=runs/camvid_transfer --override=data.data_dir=CAMVID [--output_stride=16]

Prints the class weights, then one line per alpha: mIoU, pixel accuracy, mean class accuracy and
per-class IoU on the experiment's eval split, single scale.
"""

import numpy as np
from absl import flags

from deeplab_tf.cli.flags import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("checkpoint", None, "Checkpoint (or model dir) of a model trained with class weights.")
flags.DEFINE_integer("output_stride", 0, "Output stride to evaluate at (0: the experiment's).")
flags.DEFINE_list("alphas", ["0", "0.25", "0.5", "0.75", "1"], "Powers of the class weights to divide by.")
flags.mark_flags_as_required(["checkpoint"])


def main(argv):
    del argv
    from deeplab_tf.assembly import assemble
    from deeplab_tf.data import class_weights
    from deeplab_tf.evaluation.inference import model_probabilities
    from deeplab_tf.evaluation.metrics import confusion_matrix, segmentation_metrics
    from deeplab_tf.training.checkpoints import restore_model

    values = flags.FLAGS
    experiment = resolve_experiment()
    parts = assemble(experiment, output_stride=values.output_stride)
    restore_model(parts.model, values.checkpoint)
    info = parts.info
    weights = class_weights.median_frequency_weights(*class_weights.class_pixel_counts(
        parts.source.examples(experiment.data.train_split), info.num_classes, info.ignore_label))
    print("median frequency weights:", ", ".join(f"{n} {w:.3f}" for n, w in zip(info.class_names, weights)))
    alphas = [float(a) for a in values.alphas]
    confusions = {a: np.zeros((info.num_classes,) * 2, np.int64) for a in alphas}
    for example in parts.source.examples(experiment.data.eval_split).as_numpy_iterator():
        log_p = np.log(np.maximum(model_probabilities(parts.model, parts.normalize, example["image"][None]).numpy()[0], 1e-12))
        for alpha in alphas:
            prediction = np.argmax(log_p - alpha * np.log(np.maximum(weights, 1e-12)), axis=-1)
            confusions[alpha] += confusion_matrix(example["label"], prediction, info.num_classes, info.ignore_label)
    for alpha in alphas:
        m = segmentation_metrics(confusions[alpha])
        print(f"alpha {alpha:g}: mIoU {100 * m['miou']:.2f}  pixel acc {100 * m['pixel_accuracy']:.2f}  "
              f"class acc {100 * m['mean_class_accuracy']:.2f}  per class "
              + " ".join(f"{100 * v:.1f}" for v in m["per_class_iou"]))


if __name__ == "__main__":
    run(main)
