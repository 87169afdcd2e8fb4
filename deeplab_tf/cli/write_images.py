"""Writes the first images of an experiment's split as PNG files, e.g. to try `deeplab_tf.cli.predict`.

    python -m deeplab_tf.cli.write_images --experiment=demo --split=val --count=4 --output=DIR [--overwrite]

The images are `00000.png`, `00001.png`, ... in --output. When one of the --count names exists
there, the command is refused before any image is read, naming it; --overwrite replaces them. A
--split the dataset does not have is refused naming those it has, before --output is made.
"""

import os

from absl import flags

from deeplab_tf.cli.flags import check_not_replacing, define_experiment_flags, make_output_dir, resolve_experiment, run


def define_flags() -> None:
    """Defines the command's flags (only when run as a command: `write_images` is importable beside
    other entry points, whose flags share names)."""
    define_experiment_flags()
    flags.DEFINE_string("split", "val", "Split to read.")
    flags.DEFINE_integer("count", 4, "How many images to write.", lower_bound=1)
    flags.DEFINE_string("output", None, "Folder for the PNG files.")
    flags.DEFINE_bool("overwrite", False, "Replace files of the names written (00000.png, ...) that exist in --output.")
    flags.mark_flag_as_required("output")


def write_images(source, split: str, count: int, output_dir: str, overwrite: bool = False) -> list[str]:
    """Writes the first `count` images of `split` as `NNNNN.png` into `output_dir`; returns the paths.

    Raises, before any image is read, FileExistsError when one of the `count` names exists in
    `output_dir` and `overwrite` is False (`flags.check_not_replacing`), the source's error naming
    its splits for a `split` it does not have, and OSError when `output_dir` cannot be created
    (`flags.make_output_dir`); `output_dir` is made only once those checks passed."""
    import tensorflow as tf

    names = [os.path.join(output_dir, f"{index:05d}.png") for index in range(count)]
    check_not_replacing(names, "--output", overwrite)
    examples = source.examples(split)
    make_output_dir(output_dir, "--output")
    paths = []
    for path, example in zip(names, examples.take(count)):
        tf.io.write_file(path, tf.io.encode_png(example["image"]))
        paths.append(path)
    return paths


def main(argv):
    del argv
    from deeplab_tf.data import get_source

    values = flags.FLAGS
    paths = write_images(get_source(resolve_experiment().data), values.split, values.count, values.output,
                         values.overwrite)
    print(f"Wrote {len(paths)} images to {values.output}")


if __name__ == "__main__":
    define_flags()
    run(main)
