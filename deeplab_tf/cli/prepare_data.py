"""Prepares a TFDS dataset of `deeplab_tf.data.TFDS_SOURCES` from its manual files.

    python -m deeplab_tf.cli.prepare_data --dataset=voc2012_segmentation --manual_dir=DIR \\
        [--tfds_data_dir=TFDS_DATA_DIR]

This is `tfds build` for the deeplab-tf builders (TFDS 4.9.10's `tfds` command needs apache-beam
even for builders that do not use it). `--manual_dir` is what an experiment calls `data.data_dir`
(the upstream files), `--tfds_data_dir` what it calls `data.tfds_data_dir` (the prepared records;
default $TFDS_DATA_DIR, else ~/tensorflow_datasets). Preparing twice is a no-op; prints the splits
and their sizes.
"""

from absl import flags

from deeplab_tf.cli.flags import run

flags.DEFINE_string("dataset", None, "Dataset name, e.g. voc2012_segmentation, camvid.")
flags.DEFINE_string("manual_dir", "", "Folder of the upstream archives or folders (an experiment's data.data_dir).")
flags.DEFINE_string("tfds_data_dir", "", "TFDS data dir for the prepared records (an experiment's data.tfds_data_dir).")
flags.mark_flag_as_required("dataset")


def main(argv):
    del argv
    from deeplab_tf.data.tfds_source import TfdsSource

    values = flags.FLAGS
    source = TfdsSource(values.dataset, values.manual_dir, values.tfds_data_dir,
                        settings=("--manual_dir", "--tfds_data_dir"))
    info = source.builder.info
    print(f"{info.full_name} is prepared in {source.builder.data_dir}")
    for split, split_info in sorted(info.splits.items()):
        print(f"  {split}: {split_info.num_examples} examples")


if __name__ == "__main__":
    run(main)
