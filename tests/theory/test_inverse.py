"""sigma_for: the utility sigma for a target mean agreement, and its errors."""

from __future__ import annotations

import math

import pytest
import torch

from aimod import InvalidArgumentError, InvalidLogitsError, InvalidTargetError, Modulation, theory
from tests.theory._helpers import trained_like_logits


@pytest.fixture(scope="module")
def logits() -> torch.Tensor:
    return trained_like_logits(300, 50, seed=8)


@pytest.mark.parametrize("target", [0.999, 0.9, 0.7, 0.5, 0.2, 0.05])
def test_agreement_at_the_returned_sigma_is_the_target(logits: torch.Tensor, target: float) -> None:
    sigma = theory.sigma_for(logits, target)
    assert sigma > 0
    reached = theory.agreement(logits.double(), Modulation(sigma=sigma)).mean().item()
    assert reached == pytest.approx(target, abs=1e-4)


def test_lower_targets_need_more_noise(logits: torch.Tensor) -> None:
    sigmas = [theory.sigma_for(logits, t) for t in (0.9, 0.6, 0.3, 0.1)]
    assert sigmas == sorted(sigmas)
    curve = theory.agreement_curve(logits, torch.linspace(0, 3 * sigmas[-1], 40)).mean(1)
    assert bool((curve[1:] <= curve[:-1] + 1e-6).all())  # mean agreement never rises with sigma


def test_target_one_is_the_clean_model(logits: torch.Tensor) -> None:
    assert theory.sigma_for(logits, 1.0) == 0.0
    assert theory.sigma_for(logits, 1) == 0.0


def test_round_trip_with_focus(logits: torch.Tensor) -> None:
    focus = {3: 1.0, 7: -0.5}
    at_zero = theory.agreement(logits.double(), Modulation(focus=focus)).mean().item()
    assert at_zero < 1.0
    target = at_zero - 0.2
    sigma = theory.sigma_for(logits, target, focus=focus)
    reached = theory.agreement(logits.double(), Modulation(sigma=sigma, focus=focus)).mean().item()
    assert reached == pytest.approx(target, abs=1e-4)
    assert theory.sigma_for(logits, at_zero, focus=Modulation(focus=focus)) == 0.0
    with pytest.raises(InvalidTargetError, match="focus alone"):
        theory.sigma_for(logits, min(1.0, at_zero + 0.01), focus=focus)


@pytest.mark.parametrize("target", [1 / 50, 0.0, -0.5, 1.5, math.nan, math.inf, True, "0.5", None])
def test_targets_outside_the_range_are_rejected(logits: torch.Tensor, target: object) -> None:
    with pytest.raises(InvalidTargetError) as info:
        theory.sigma_for(logits, target)  # type: ignore[arg-type]
    message = str(info.value)
    assert "(0.02, 1]" in message
    assert "K=50" in message
    assert "1 means the clean model" in message
    assert isinstance(info.value, ValueError)


def test_target_just_above_chance_is_reached_or_rejected_clearly() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    sigma = theory.sigma_for(z, 0.5 + 1e-3)
    assert theory.agreement(z.double(), Modulation(sigma=sigma)).mean().item() == pytest.approx(0.501, abs=1e-5)


def test_sigma_for_needs_samples_and_a_plain_focus() -> None:
    with pytest.raises(InvalidLogitsError, match="0 rows"):
        theory.sigma_for(torch.empty(0, 5), 0.5)
    with pytest.raises(InvalidArgumentError, match="sigma=0"):
        theory.sigma_for(torch.randn(4, 5), 0.5, focus=Modulation(sigma=1.0, focus={1: 1.0}))
    with pytest.raises(InvalidTargetError):
        theory.sigma_for(torch.randn(4, 1), 0.5)  # one class: (1, 1] is empty
