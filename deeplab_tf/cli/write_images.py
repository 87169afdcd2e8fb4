"""Writes the first images of an experiment's split as PNG files, e.g. to try `deeplab_tf.cli.predict`.

    python -m deeplab_tf.cli.write_images --experiment=demo --split=val --count=4 --output=DIR
"""

import os

from absl import flags

from deeplab_tf.cli.flags import define_experiment_flags, resolve_experiment, run

define_experiment_flags()
flags.DEFINE_string("split", "val", "Split to read.")
flags.DEFINE_integer("count", 4, "How many images to write.", lower_bound=1)
flags.DEFINE_string("output", None, "Folder for the PNG files.")
flags.mark_flag_as_required("output")


def write_images(source, split: str, count: int, output_dir: str) -> list[str]:
    """Writes the first `count` images of `split` as `NNNNN.png` into `output_dir`; returns the paths."""
    import tensorflow as tf

    os.makedirs(output_dir, exist_ok=True)
    paths = []
    for index, example in enumerate(source.examples(split).take(count)):
        path = os.path.join(output_dir, f"{index:05d}.png")
        tf.io.write_file(path, tf.io.encode_png(example["image"]))
        paths.append(path)
    return paths


def main(argv):
    del argv
    from deeplab_tf.data import get_source

    values = flags.FLAGS
    paths = write_images(get_source(resolve_experiment().data), values.split, values.count, values.output)
    print(f"Wrote {len(paths)} images to {values.output}")


if __name__ == "__main__":
    run(main)
