"""Does a recipe's training survive its peak learning rate? The first steps of an experiment,
several seeds, every step's loss.

    python -m bench.warmup_stability --experiment=camvid_mnv2_voc_transfer --steps=150 \
        --seeds=0,1,2 [--override=train.warmup_steps=300 ...] [--collapse_loss=1.5] \
        [--json=FILE]

Each seed trains the experiment (with `train.seed=SEED`, `train.log_every=1` and the overrides)
into a fresh temporary model dir through `deeplab_tf.training.trainer.train`, the step users
run, on the experiment's full schedule (`train.steps` unchanged, so the learning rate is the
recipe's at every step); after `--steps` steps the run is stopped as a preempted one is (SIGTERM:
the step finishes, a checkpoint is written, `resume.Preempted`), and the model dir deleted.

Printed per seed: the loss of every 10th step, the mean loss of the last 10 steps, and the
largest single-step loss after `--after` steps (default: half the warm-up). A run "collapsed"
when that largest loss exceeds `--collapse_loss` (default 1.5; ln 11 = 2.40 is a uniform guess
over CamVid's 11 classes). Training is not bit-deterministic unless `train.deterministic=true`,
so a seed repeated gives another run.
"""

import argparse
import json
import os
import re
import shutil
import signal
import tempfile
import time

from bench import provenance


def run_seed(experiment, steps: int, log) -> list[float]:
    """Trains `experiment` for its first `steps` steps in a temporary model dir (deleted after).
    Returns the loss of each step, a list of `steps` floats; when the trainer stops on a
    non-finite loss, the losses before it and then one `inf`."""
    import keras
    from deeplab_tf.training import resume, trainer

    losses = []

    def record(line: str):
        log(line)
        match = re.match(r"step (\d+)/\d+\s+loss (\S+)", line)
        if match:
            losses.append(float(match.group(2)))
            if int(match.group(1)) == steps:
                os.kill(os.getpid(), signal.SIGTERM)  # the trainer finishes this step and stops

    model_dir = tempfile.mkdtemp(prefix="warmup_stability_")
    try:
        trainer.train(experiment, model_dir, log=record)
    except resume.Preempted:
        pass
    except FloatingPointError as error:  # the loss became NaN or Inf: the losses so far, then inf
        log(f"diverged: {error}")
        losses.append(float("inf"))
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
        keras.backend.clear_session()
    return losses


def summarize(losses: list[float], after: int, collapse_loss: float) -> dict:
    """Returns {"every_10th": losses of steps 10, 20, ..., "last_10_mean", "max_after": largest
    loss after step `after`, "max_after_step", "collapsed": max_after > collapse_loss}."""
    tail = losses[after:]
    worst = max(range(len(tail)), key=tail.__getitem__) if tail else None
    return {
        "every_10th": losses[9::10],
        "last_10_mean": sum(losses[-10:]) / max(len(losses[-10:]), 1),
        "max_after": tail[worst] if tail else float("nan"),
        "max_after_step": after + worst + 1 if tail else None,
        "collapsed": bool(tail) and tail[worst] > collapse_loss,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--override", action="append", default=[], help="key=value, as the train CLI's")
    parser.add_argument("--after", type=int, default=None, help="steps before the collapse check (default: warm-up / 2)")
    parser.add_argument("--collapse_loss", type=float, default=1.5)
    parser.add_argument("--json", default="")
    parser.add_argument("--quiet", action="store_true", help="do not print the trainer's lines")
    args = parser.parse_args()

    from deeplab_tf.config import apply_overrides
    from experiments.registry import get_experiment

    print(provenance.describe(), flush=True)
    base = apply_overrides(get_experiment(args.experiment), args.override)
    after = args.after if args.after is not None else base.train.warmup_steps // 2
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        experiment = apply_overrides(base, [f"train.seed={seed}", "train.log_every=1"])
        start = time.time()
        losses = run_seed(experiment, args.steps, log=(lambda line: None) if args.quiet else print)
        summary = summarize(losses, after, args.collapse_loss)
        results.append({"seed": seed, "overrides": args.override, "losses": losses,
                        "seconds": time.time() - start, **summary})
        print(f"seed {seed} {' '.join(args.override)}: loss every 10th step "
              + " ".join(f"{x:.2f}" for x in summary["every_10th"])
              + f"; last 10 mean {summary['last_10_mean']:.3f}; max after step {after} "
              f"{summary['max_after']:.3f} (step {summary['max_after_step']})"
              + ("  COLLAPSED" if summary["collapsed"] else ""), flush=True)
    collapsed = sum(r["collapsed"] for r in results)
    print(f"{args.experiment} {' '.join(args.override)}: {collapsed} of {len(results)} runs collapsed "
          f"(a step's loss > {args.collapse_loss} after the first {after} steps)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"provenance": provenance.record(), "experiment": args.experiment,
                       "steps": args.steps, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
