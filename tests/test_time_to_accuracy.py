"""The time-to-accuracy benchmark's comparison at equal wall time: the rule a fast preset must pass."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from time_to_accuracy import acc_at_reference_times  # noqa: E402


def _curve(*points):
    return [{"time": t, "acc": a} for t, a in points]


def test_variants_are_compared_at_the_reference_times():
    curves = {("paper", 0): _curve((60, 0.30), (120, 0.50), (180, 0.60)),
              ("paper", 1): _curve((70, 0.20), (130, 0.40), (190, 0.70)),
              # twice as fast per step: evaluations at half the times
              ("bf16", 0): _curve((30, 0.25), (60, 0.35), (90, 0.45), (120, 0.55), (150, 0.58), (180, 0.66)),
              ("bf16", 1): _curve((35, 0.10), (65, 0.30), (95, 0.35), (125, 0.45), (155, 0.60), (185, 0.69)),
              ("slow", 0): _curve((100, 0.9)), ("slow", 1): _curve((50, 0.9))}
    assert acc_at_reference_times(curves, "paper", "paper", [0, 1]) == pytest.approx([0.25, 0.45, 0.65])
    # seed 0 at 60/120/180 s: 0.35, 0.55, 0.66; seed 1 at 70/130/190 s: 0.30, 0.45, 0.69
    assert acc_at_reference_times(curves, "bf16", "paper", [0, 1]) == pytest.approx([0.325, 0.5, 0.675])
    # a variant with no evaluation yet for some seed at a reference time has no mean there
    assert acc_at_reference_times(curves, "slow", "paper", [0, 1]) == [None, 0.9, 0.9]
    # the shortest reference curve over the seeds sets how many times there are
    curves[("paper", 1)] = curves[("paper", 1)][:2]
    assert len(acc_at_reference_times(curves, "bf16", "paper", [0, 1])) == 2
