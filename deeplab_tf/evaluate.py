"""Evaluates a trained experiment on a split and writes `eval.json`.

    python -m deeplab_tf.evaluate --experiment=demo --model_dir=runs/demo [--split=val]
"""

import json
import os

from absl import flags

from deeplab_tf.cli import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Training folder (its latest checkpoint is evaluated).")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; defaults to the latest in --model_dir.")
flags.DEFINE_string("split", None, "Split to evaluate; defaults to the experiment's data.eval_split.")
flags.DEFINE_string("output", None, "Where to write the JSON results; defaults to MODEL_DIR/eval.json.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from deeplab_tf.assembly import assemble
    from deeplab_tf.checkpoints import restore_model
    from deeplab_tf.data.pipeline import build_eval_dataset
    from deeplab_tf.evaluation import evaluate, format_table, json_safe, model_label_predictor

    values = flags.FLAGS
    experiment = resolve_experiment()
    split = values.split or experiment.data.eval_split
    parts = assemble(experiment)
    checkpoint = restore_model(parts.model, values.checkpoint or values.model_dir)
    dataset = build_eval_dataset(experiment.data, split, parts.normalize, batch_size=experiment.eval.batch_size)
    results = evaluate(model_label_predictor(parts.model), dataset, parts.info)
    print(format_table(results))
    results.update(experiment=experiment.name, split=split, checkpoint=checkpoint, config=experiment.to_dict())
    output = values.output or os.path.join(values.model_dir, "eval.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(json_safe(results), f, indent=2)
    print(f"Wrote {output}")


if __name__ == "__main__":
    run(main)
