"""Searches the dense-CRF parameters for a trained model and writes MODEL_DIR/crf_params.json.

    python -m deeplab_tf.cli.crf_search --model_dir=runs/camvid [--split=val] [--num_images=100] \\
        [--processes=2] [--output=FILE]

The experiment is the one the run in --model_dir recorded in its config.json (--experiment and the
training's --override's need not be repeated). Its model is restored from --model_dir, its softmax
probabilities on the first --num_images images of --split form the held-out subset, and
`deeplab_tf.evaluation.crf_search` runs DeepLab v2's coarse-to-fine grid over them with pydensecrf
in parallel processes (see `deeplab_tf.evaluation.crf_search.search_model`). Load the result with
`deeplab_tf.crf.load_params(MODEL_DIR + "/crf_params.json")`. An existing output file (the user's,
or an earlier search's) is never replaced: the command is refused before the search, as it is
when the output cannot be written or --split names a split the dataset does not have.
"""

import os

from absl import flags

from deeplab_tf.cli.flags import (check_not_replacing, check_output_dir, define_experiment_flags, make_output_dir,
                                  model_to_read, resolve_experiment, run)

define_experiment_flags()
flags.DEFINE_string("model_dir", None, "Training folder: its latest checkpoint is used and the result written there.")
flags.DEFINE_string("checkpoint", None, "A checkpoint prefix; defaults to the latest in --model_dir.")
flags.DEFINE_string("split", None, "Split holding the held-out images; defaults to the experiment's data.eval_split.")
flags.DEFINE_integer("num_images", 100, "Number of images (the first ones of --split) to search on; DeepLab used 100.",
                     lower_bound=1)
flags.DEFINE_integer("processes", None, "Worker processes; defaults to one per CPU core.", lower_bound=1)
flags.DEFINE_string("output", None, "Where to write the JSON result (a new file); defaults to "
                    "MODEL_DIR/crf_params.json.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    from deeplab_tf.data import get_source
    from deeplab_tf.evaluation.crf_search import params_path, search_model

    values = flags.FLAGS
    experiment = resolve_experiment(model_to_read(values.model_dir, values.checkpoint))
    output = params_path(values.model_dir, values.output)
    check_not_replacing([output], "--output")  # before the search
    folder = os.path.dirname(output) or "."
    check_output_dir(folder, "the folder of --output")
    get_source(experiment.data).examples(values.split or experiment.data.eval_split)  # an unknown split: named
    make_output_dir(folder, "the folder of --output")
    search_model(experiment, values.model_dir, values.checkpoint, values.split, values.num_images, values.processes,
                 values.output)


if __name__ == "__main__":
    run(main)
