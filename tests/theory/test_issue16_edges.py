"""The edges of the theory (issue 16): tiny and huge sigmas and logits, many focused classes, the inverse's limits.

Each test is one line of the issue's table; the property test at the end runs random extreme inputs in a
fresh process and bounds its peak memory.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch

from aimod import InvalidTargetError, Modulation, theory

TINY = 5e-324  # the smallest positive float


def _z(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


PURE_FOCUS = [1 - math.erfc(1 / math.sqrt(2)), math.erfc(1 / math.sqrt(2)), 0.0]  # 2Φ(-1) for class 1


@pytest.mark.parametrize("sigma", [1e-20, 1e-16, 1e-12])
def test_tiny_sigma_with_focus_is_the_pure_focus_law(sigma: float) -> None:
    p = theory.class_probabilities(_z([[2, 1, 0]]), Modulation(sigma=sigma, focus={1: 1.0}))
    assert p[0].tolist() == pytest.approx(PURE_FOCUS, abs=1e-9)


def test_tiny_sigma_with_focus_agreement() -> None:
    a = theory.agreement(_z([[2, 1, 0]]), Modulation(sigma=1e-16, focus={1: 1.0}))
    assert float(a[0]) == pytest.approx(PURE_FOCUS[0], abs=1e-9)


def test_smallest_positive_sigma_splits_a_tie() -> None:
    m = Modulation(sigma=TINY)
    assert theory.class_probabilities(_z([[1, 1]]), m)[0].tolist() == [0.5, 0.5]
    assert theory.agreement(_z([[1, 1]]), m).tolist() == [0.5]
    assert theory.class_probabilities(_z([[1, 1, 1, -3]]), Modulation(sigma=1e-300))[0].tolist() == pytest.approx(
        [1 / 3, 1 / 3, 1 / 3, 0]
    )


def test_largest_finite_logits() -> None:
    z, m = _z([[1e308, -1e308]]), Modulation(sigma=1.0)
    assert theory.class_probabilities(z, m)[0].tolist() == [1.0, 0.0]
    assert theory.accuracy(z, torch.tensor([1]), m).tolist() == [0.0]
    assert theory.agreement(z, m).tolist() == [1.0]
    # a sigma of the logits' own size still matters, with the pairwise closed form Φ(Δ/(σ√2))
    p = theory.class_probabilities(_z([[1e308, -1e308]]), Modulation(sigma=1e308))
    assert float(p[0, 0]) == pytest.approx(0.5 * math.erfc(-2 / 2), abs=1e-6)


@pytest.mark.parametrize("gap", [10.0, 100.0, 1e4])
def test_accuracy_far_behind_with_tiny_sigma_is_zero_at_once(gap: float) -> None:
    start = time.perf_counter()
    assert theory.accuracy(_z([[gap, 0, -1]]), torch.tensor([1]), Modulation(sigma=1e-6)).tolist() == [0.0]
    assert time.perf_counter() - start < 1.0


def test_accuracy_curve_with_the_label_far_behind_is_zero_quickly() -> None:
    gen = torch.Generator().manual_seed(16)
    z = torch.randn(1000, 100, generator=gen, dtype=torch.float64)
    labels = z.argmin(1)
    z[torch.arange(1000), labels] = z.max(1).values - 30.0
    start = time.perf_counter()
    curve = theory.accuracy_curve(z, labels, torch.logspace(-3, 1, 41))
    assert time.perf_counter() - start < 10.0
    assert curve.shape == (41, 1000)
    assert float(curve.max()) < 1e-5
    assert float(curve.min()) >= 0.0


@pytest.mark.parametrize(("classes", "sigma"), [(1000, 1.0), (10_000, 0.0)])
def test_focus_on_every_class_is_bounded(classes: int, sigma: float) -> None:
    gen = torch.Generator().manual_seed(classes)
    z = torch.randn(1, classes, generator=gen, dtype=torch.float64)
    start = time.perf_counter()
    p = theory.class_probabilities(z, Modulation(sigma=sigma, focus={i: 1.0 for i in range(classes)}))
    assert time.perf_counter() - start < 3.0  # before issue 16: 8 s (and 5 GB) for 1,000; 14 GB asked for 10,000
    assert float(p.min()) >= 0.0
    assert float(p.max()) <= 1.0
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)


def test_rows_sum_to_one_at_fifty_thousand_classes() -> None:
    z = 3 * torch.randn(1, 50_000, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    p = theory.class_probabilities(z, Modulation(sigma=10.0))
    assert abs(float(p.sum()) - 1.0) < 1e-6
    assert float(p.min()) >= 0.0


@pytest.mark.parametrize(
    ("rows", "focus"),
    [([[1, 1, 0]], None), ([[1, 1, 0], [2, 2, 2]], None), ([[1, 1, 0], [3, 0, 0]], None), ([[1, 1, 0]], {2: 1.0})],
)
def test_sigma_for_says_why_ties_make_a_target_unreachable(rows: list[list[float]], focus: dict[int, float]) -> None:
    target = 0.9 if focus is None else 0.5
    with pytest.raises(InvalidTargetError, match="tied"):
        theory.sigma_for(_z(rows), target, focus=focus)


def test_sigma_for_below_the_tie_limit_still_works() -> None:
    z = _z([[1, 1, 0], [3, 0, 0]])  # limit as sigma -> 0+: (1/2 + 1)/2 = 0.75
    sigma = theory.sigma_for(z, 0.7)
    assert float(theory.agreement(z, Modulation(sigma=sigma)).mean()) == pytest.approx(0.7, abs=1e-6)


@pytest.mark.parametrize("target", [1 / 3 + 1e-12, 1 / 3 + 5e-5])
def test_sigma_for_refuses_targets_at_chance(target: float) -> None:
    with pytest.raises(InvalidTargetError, match="chance"):
        theory.sigma_for(_z([[3, 1, 0]]), target)


_PROPERTY_SCRIPT = r"""
import json, math, resource, sys, time
import numpy as np, torch
from aimod import Modulation, theory

rng = np.random.default_rng(16)
worst, start = 0.0, time.perf_counter()
for case in range(int(sys.argv[1])):
    rows, classes = int(rng.integers(1, 6)), int(rng.integers(2, 400))
    magnitude = 10.0 ** rng.uniform(-3, 307)
    z = torch.tensor(rng.standard_normal((rows, classes)) * magnitude, dtype=torch.float64)
    if rng.random() < 0.3:
        z[:, 1] = z[:, 0]  # exact ties
    sigma = float(10.0 ** rng.uniform(-323, 3) * (magnitude if rng.random() < 0.5 else 1.0))
    sigma = sigma if rng.random() < 0.9 else 0.0
    sigma = min(sigma, 1e308)
    focus = {}
    if rng.random() < 0.5:
        for k in rng.choice(classes, size=int(rng.integers(1, min(classes, 50) + 1)), replace=False):
            focus[int(k)] = float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-6, 3))
    m = Modulation(sigma=sigma, focus=focus)
    p = theory.class_probabilities(z, m)
    assert bool(torch.isfinite(p).all()), (case, m)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0 + 1e-12, (case, m)
    worst = max(worst, float((p.sum(1) - 1).abs().max()))
    labels = torch.tensor(rng.integers(0, classes, rows))
    a = theory.accuracy(z, labels, m)
    assert bool(((a >= 0) & (a <= 1 + 1e-12)).all()), (case, m)
z = torch.randn(1, 1000, generator=torch.Generator().manual_seed(1000), dtype=torch.float64)
p = theory.class_probabilities(z, Modulation(sigma=1.0, focus={i: 1.0 for i in range(1000)}))  # 5 GB before
worst = max(worst, abs(float(p.sum()) - 1))
# This process's own peak (VmHWM): ru_maxrss on Linux keeps the peak of the process that exec'd it (the test worker).
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak_kib = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rss_mib": peak_kib / 1024,
                  "worst_sum_error": worst, "seconds": time.perf_counter() - start}))
"""


def test_random_extreme_inputs_give_valid_probabilities_in_bounded_memory() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROPERTY_SCRIPT, "60"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rss_mib"] < 1500, report  # an unbounded quadrature asks for gigabytes here
    assert report["worst_sum_error"] < 1e-6, report


@pytest.mark.parametrize("sigma", [1e-310, 1e-320, TINY])
def test_denormal_sigma_with_gaps_of_its_own_size(sigma: float) -> None:
    z = _z([[sigma, 0, -1], [0, 0, 0]])
    p = theory.class_probabilities(z, Modulation(sigma=sigma))
    expected = 0.5 * math.erfc(-1 / 2)  # Φ(1/√2): the pairwise law of a gap of one sigma
    assert p[0].tolist() == pytest.approx([expected, 1 - expected, 0.0], abs=1e-6)
    assert p[1].tolist() == pytest.approx([1 / 3] * 3, abs=1e-6)
    assert float(theory.agreement(z, Modulation(sigma=sigma))[0]) == pytest.approx(expected, abs=1e-6)
