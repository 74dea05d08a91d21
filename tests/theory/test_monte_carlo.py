"""Every formula of aimod.theory against Monte Carlo simulation through aimod.modulate_logits.

Each case repeats a few rows of logits many times (200,000 draws in all), so the Monte Carlo error of a
sample-mean probability is below 0.0012 and the 0.005 tolerance is about 4.5 standard errors. Per row and
class the tolerance is 5 standard errors of that cell (plus 0.002 for the float32 noise).
"""

from __future__ import annotations

import pytest
import torch

from aimod import Modulation, theory
from tests.theory._helpers import simulate

REPEATS = 25_000  # per row; 8 rows
TOLERANCE = 0.005


@pytest.fixture(scope="module")
def logits() -> torch.Tensor:
    gen = torch.Generator().manual_seed(11)
    z = 1.5 * torch.randn(8, 6, generator=gen)
    z[:, 0] += torch.tensor([2.0, 0.0, 1.0, 3.0, 0.5, 0.0, 1.5, 2.5])  # class 0 often, not always, on top
    return z


def assert_matches_simulation(predicted: torch.Tensor, simulated: torch.Tensor) -> None:
    """Class probabilities (N, K): the mean over rows within 0.005, each cell within 5 standard errors."""
    predicted = predicted.double()
    assert torch.allclose(predicted.sum(1), torch.ones(predicted.shape[0], dtype=torch.float64), atol=1e-4)
    mean_gap = (predicted.mean(0) - simulated.mean(0)).abs().max().item()
    assert mean_gap < TOLERANCE, f"mean over rows differs by {mean_gap:.4f}"
    stderr = (predicted * (1 - predicted) / REPEATS).sqrt()
    cell_gap = (predicted - simulated).abs() - 5 * stderr - 0.002
    assert cell_gap.max().item() < 0, f"a cell differs by {(predicted - simulated).abs().max().item():.4f}"


CASES = {
    # utility only
    "utility sigma 0.5": Modulation(sigma=0.5),
    "utility sigma 2": Modulation(sigma=2.0),
    # focus only (sigma 0): one class promoted, the usual winner suppressed, several mixed, every class
    "promote one": Modulation(focus={3: 2.0}),
    "suppress the winner": Modulation(focus={0: -1.5}),
    "promote and suppress several": Modulation(focus={1: 2.0, 0: -1.0, 4: 0.5}),
    "every class focused": Modulation(focus={0: -1.0, 1: 1.0, 2: -2.0, 3: 2.0, 4: 0.5, 5: -0.5}),
    # both together: moderate, sharp (sigma much smaller than the focus) and broad (sigma much larger)
    "utility and focus": Modulation(sigma=0.7, focus={2: 3.0, 0: -2.0}),
    "small utility, strong focus": Modulation(sigma=0.05, focus={2: 3.0, 5: -1.0}),
    "large utility, weak focus": Modulation(sigma=3.0, focus={2: 0.3, 4: -0.2}),
}


@pytest.mark.parametrize("modulation", CASES.values(), ids=CASES.keys())
def test_class_probabilities_match_simulation(logits: torch.Tensor, modulation: Modulation) -> None:
    predicted = theory.class_probabilities(logits, modulation)
    assert_matches_simulation(predicted, simulate(logits, modulation, REPEATS, seed=1))


@pytest.mark.parametrize(
    "modulation",
    [Modulation(sigma=1.0), Modulation(focus={2: 2.5}), Modulation(sigma=0.5, focus={0: -2.0, 3: 1.0})],
    ids=["utility", "focus", "both"],
)
def test_agreement_and_accuracy_match_simulation(logits: torch.Tensor, modulation: Modulation) -> None:
    labels = torch.tensor([0, 1, 0, 2, 0, 3, 0, 5])
    simulated = simulate(logits, modulation, REPEATS, seed=2)
    clean = logits.argmax(1)
    measured_agreement = simulated.gather(1, clean[:, None])[:, 0].mean().item()
    measured_accuracy = simulated.gather(1, labels[:, None])[:, 0].mean().item()
    assert theory.agreement(logits, modulation).mean().item() == pytest.approx(measured_agreement, abs=TOLERANCE)
    assert theory.accuracy(logits, labels, modulation).mean().item() == pytest.approx(measured_accuracy, abs=TOLERANCE)


def test_curves_match_simulation_at_each_sigma(logits: torch.Tensor) -> None:
    sigmas = [0.0, 0.8, 4.0]
    focus = {"b": 1.5}
    names = ["a", "b", "c", "d", "e", "f"]
    curve = theory.agreement_curve(logits, sigmas, focus=focus, id2label=names)
    assert curve.shape == (3, 8)
    clean = logits.argmax(1)
    for i, sigma in enumerate(sigmas):
        simulated = simulate(logits, Modulation(sigma=sigma, focus={1: 1.5}), REPEATS, seed=3 + i)
        measured = simulated.gather(1, clean[:, None])[:, 0].mean().item()
        assert curve[i].mean().item() == pytest.approx(measured, abs=TOLERANCE)


@pytest.mark.parametrize("focus", [None, {0: 2.0, 1: -1.0}], ids=["utility", "utility and focus"])
def test_many_classes_agreement_matches_simulation(focus: dict[int, float] | None) -> None:
    # 100 classes: the compressed paths (sorted gaps in bins) of agreement_curve with and without focus
    gen = torch.Generator().manual_seed(5)
    z = 2.0 * torch.randn(40, 100, generator=gen)
    z[torch.arange(40), torch.randint(100, (40,), generator=gen)] += 6 * torch.rand(40, generator=gen)
    clean = z.argmax(1)
    sigmas = [0.5, 1.5, 4.0]
    curve = theory.agreement_curve(z, sigmas, focus=focus)
    for i, sigma in enumerate(sigmas):
        simulated = simulate(z, Modulation(sigma=sigma, focus=focus or {}), 5_000, seed=10 + i)
        measured = simulated.gather(1, clean[:, None])[:, 0].mean().item()
        assert curve[i].mean().item() == pytest.approx(measured, abs=TOLERANCE)
