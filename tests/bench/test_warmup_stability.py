"""bench/warmup_stability.py: the per-run summary of the first steps' losses."""

import math

from bench import warmup_stability


def test_summary_of_a_run_that_rises_after_the_first_steps():
    # 30 steps: 2.0 falling by 0.05 per step to 0.55 at step 30, but step 25's loss is 1.8.
    losses = [2.0 - 0.05 * i for i in range(30)]
    losses[24] = 1.8
    summary = warmup_stability.summarize(losses, after=10, collapse_loss=1.5)
    assert summary["every_10th"] == [losses[9], losses[19], losses[29]]
    assert math.isclose(summary["last_10_mean"], sum(losses[20:]) / 10)
    assert (summary["max_after"], summary["max_after_step"], summary["collapsed"]) == (1.8, 25, True)


def test_the_steps_before_after_do_not_count_and_a_calm_run_has_not_collapsed():
    losses = [8.0, 6.0] + [0.5] * 8
    summary = warmup_stability.summarize(losses, after=2, collapse_loss=1.5)
    assert (summary["max_after"], summary["max_after_step"], summary["collapsed"]) == (0.5, 3, False)


def test_a_run_stopped_on_a_nan_loss_ends_in_inf_and_has_collapsed():
    summary = warmup_stability.summarize([2.0, 1.0, 0.8, math.inf], after=1, collapse_loss=1.5)
    assert summary["max_after"] == math.inf and summary["max_after_step"] == 4 and summary["collapsed"]
