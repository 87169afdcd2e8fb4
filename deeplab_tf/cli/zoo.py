"""Lists the pretrained models deeplab-tf knows, and checks a local copy of one.

    python -m deeplab_tf.cli.zoo [PATTERN]                  # the registry (names matching the glob)
    python -m deeplab_tf.cli.zoo --check=NAME --path=PATH   # files present, sha256 as published
    python -m deeplab_tf.cli.zoo --check=NAME               # a model deeplab-tf ships (weights/)

Each entry names the experiment that builds it, the published file and URL, its sha256 where
known, the mIoU with its protocol, and the files it needs. Nothing is downloaded: fetch an
official model's files, then pass the path, e.g. `--override=train.init_checkpoint=PATH` to train
from it or `--checkpoint=PATH` to evaluate or export it. A model deeplab-tf ships is taken by
name: `--checkpoint=NAME`.
"""

import fnmatch

from absl import flags

from deeplab_tf.cli.flags import refuse_flag_unless, run

flags.DEFINE_string("check", None, "Name of a pretrained model whose local files --path holds.")
flags.DEFINE_string("path", None, "With --check: the folder (or file) holding the model's files "
                    "(default for a shipped model: the repository's weights/ folder).")
refuse_flag_unless("path", lambda values: values.check,
                   "the files are checked only with --check=NAME: add it or drop --path")


def describe(model) -> str:
    """Returns the listing of one `PretrainedModel` as indented text lines."""
    lines = [model.name, f"  experiment:   {model.experiment}", f"  published as: {model.published_as}",
             f"  url:          {model.url}", f"  files:        {', '.join(model.files)}",
             f"  mIoU:         {f'{model.miou:.2f}%' if model.miou else 'not published'} ({model.protocol})",
             f"  imports here: {'yes' if model.imports_here else 'not yet'} ({model.importer})"]
    lines += [f"  sha256:       {sha} {name}" for name, sha in model.sha256.items()]
    return "\n".join(lines)


def main(argv):
    from deeplab_tf.pretrained.zoo import PRETRAINED_MODELS, WEIGHTS_DIR, check_files, get_pretrained, is_shipped

    values = flags.FLAGS
    if values.check:
        if len(argv) > 1:
            raise ValueError(f"--check={values.check} checks one model, and lists none: drop {' '.join(argv[1:])!r}")
        model = get_pretrained(values.check)
        path = values.path or (WEIGHTS_DIR if is_shipped(model.name) else None)
        if not path:
            raise ValueError("--check needs --path, the folder holding the model's files")
        problems = check_files(model, path)
        if problems:
            raise ValueError(f"{values.check} at {path}: " + "; ".join(problems))
        print(f"{values.check}: every file present at {path}, published sha256 matched where known")
        return
    pattern = argv[1] if len(argv) > 1 else "*"
    names = [name for name in sorted(PRETRAINED_MODELS) if fnmatch.fnmatch(name, pattern)]
    if not names:
        raise ValueError(f"No pretrained model matches {pattern!r}; known: {', '.join(sorted(PRETRAINED_MODELS))}")
    print("\n\n".join(describe(PRETRAINED_MODELS[name]) for name in names))


if __name__ == "__main__":
    run(main)
