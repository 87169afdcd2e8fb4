"""Lists the registered experiments as a table: name, model, dataset, output stride, parameters
and the number the paper reports.

    python -m deeplab_tf.cli.experiments [PATTERN] [--noparams]

PATTERN is a glob (`voc_*`). Counting parameters builds each distinct model (about a minute for
all of them on 2 CPU cores); `--noparams` skips it.
"""

from absl import flags

from deeplab_tf.cli.flags import run

flags.DEFINE_bool("params", True, "Build each model to count its parameters.")


def experiment_rows(pattern: str = "*", count_params: bool = True) -> list[dict]:
    """Returns one dict per experiment matching `pattern`: name, model, dataset, output_stride,
    params (millions, or None when not counted), paper_miou (None when the paper gives none) and
    paper_source."""
    import experiments
    from deeplab_tf.data import dataset_info
    from deeplab_tf.models import build_model

    rows, params_by_model = [], {}
    for name in experiments.list_experiments(pattern):
        experiment = experiments.get_experiment(name)
        model = experiment.model
        params = None
        if count_params:
            key = (model, dataset_info(experiment.data.dataset).num_classes)
            if key not in params_by_model:
                params_by_model[key] = build_model(model, key[1]).model.count_params() / 1e6
            params = params_by_model[key]
        rows.append(
            {
                "name": name,
                "model": f"{model.arch} {model.backbone}" + (" MSC" if model.msc_scales else ""),
                "dataset": f"{experiment.data.dataset}/{experiment.data.train_split}",
                "output_stride": model.output_stride,
                "params": params,
                "paper_miou": experiment.paper_miou or None,
                "paper_source": experiment.paper_source,
            }
        )
    return rows


def format_rows(rows: list[dict]) -> str:
    """Returns the rows as an aligned plain-text table."""
    header = ("name", "model", "dataset", "OS", "params", "paper mIoU", "source")
    table = [header] + [
        (
            r["name"], r["model"], r["dataset"], str(r["output_stride"]),
            "-" if r["params"] is None else f"{r['params']:.1f}M",
            "-" if r["paper_miou"] is None else f"{r['paper_miou']:.2f}",
            r["paper_source"] or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def main(argv):
    pattern = argv[1] if len(argv) > 1 else "*"
    rows = experiment_rows(pattern, flags.FLAGS.params)
    if not rows:
        raise ValueError(f"No experiment matches {pattern!r}")
    print(format_rows(rows))


if __name__ == "__main__":
    run(main)
