"""Nested tier noise: every tier exactly N(0, sigma^2), lower tiers = higher tiers + independent increments."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from aimod import KeyedNoise, Modulation, SeededNoise, modulate_logits
from aimod.chain import LEVELS, brownian, grid_variance, same_cell

CPU = torch.device("cpu")
N = 200_000


def _seeds(n: int = N) -> torch.Tensor:
    return KeyedNoise("chain statistics secret").row_seeds(n, torch.arange(n), CPU)


@pytest.fixture(scope="module")
def paths() -> dict[float, torch.Tensor]:
    """One keyed path per row (200,000 rows x 1 class), read at five tiers' sigmas."""
    seeds = _seeds()
    return {s: brownian(seeds, 1, 1, torch.full((N,), s * s))[:, 0, 0].double() for s in (0.3, 1.0, 1.909, 6.2266, 40)}


@pytest.mark.parametrize("sigma", [0.3, 1.0, 1.909, 6.2266, 40])
def test_every_tier_is_exactly_normal_with_its_sigma(paths: dict[float, torch.Tensor], sigma: float) -> None:
    x = paths[sigma] / sigma
    assert abs(float(x.mean())) < 4 / math.sqrt(N)
    assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / N)
    assert stats.kstest(x.numpy(), "norm").pvalue > 1e-3


@pytest.mark.parametrize(("low", "high"), [(0.3, 1.0), (1.0, 1.909), (1.909, 6.2266), (0.3, 40), (6.2266, 40)])
def test_increments_are_independent_of_the_lower_noise_tier(
    paths: dict[float, torch.Tensor], low: float, high: float
) -> None:
    a, b = paths[low], paths[high]
    increment = b - a
    # a Brownian path: corr(B(s), B(t) - B(s)) = 0, var(B(t) - B(s)) = t - s, corr(B(s), B(t)) = s / t
    assert abs(float(torch.corrcoef(torch.stack([a, increment]))[0, 1])) < 4 / math.sqrt(N)
    assert abs(float(increment.var()) / (high**2 - low**2) - 1) < 4 * math.sqrt(2 / N)
    assert abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1]) - low / high) < 4 / math.sqrt(N)
    # independence, not only no correlation: the increment's law is the same whatever the sign and size of a
    big = a.abs() > low
    assert stats.ks_2samp(increment[big].numpy(), increment[~big].numpy()).pvalue > 1e-3
    assert abs(float(torch.corrcoef(torch.stack([a.square(), increment.square()]))[0, 1])) < 5 / math.sqrt(N)


def test_three_tiers_form_a_markov_chain(paths: dict[float, torch.Tensor]) -> None:
    """Given the best tier's noise, the worst tier's adds nothing about the middle one (partial corr 0)."""
    a, b, c = paths[1.0], paths[1.909], paths[6.2266]
    x = torch.stack([a, b, c])
    precision = torch.linalg.inv(torch.cov(x))
    partial_ac = -precision[0, 2] / torch.sqrt(precision[0, 0] * precision[2, 2])
    assert abs(float(partial_ac)) < 4 / math.sqrt(N)


def test_a_tier_added_later_changes_nothing_for_the_others() -> None:
    """The path does not depend on which sigmas are asked for together: each row is a pure function of its key."""
    seeds = _seeds(4)
    alone = brownian(seeds, 2, 7, torch.tensor([1.0, 4.0, 9.0, 0.25]))
    for other in (torch.tensor([2.0, 2.0, 2.0, 2.0]), torch.tensor([0.5, 100.0, 1e-9, 3.0])):
        mixed = brownian(torch.cat([seeds, seeds]), 2, 7, torch.cat([torch.tensor([1.0, 4.0, 9.0, 0.25]), other]))
        assert torch.equal(mixed[:4], alone)


def test_zero_sigma_gives_zero_and_sigma_is_monotone_in_spread() -> None:
    seeds = _seeds(3)
    assert torch.equal(brownian(seeds, 1, 5, torch.zeros(3)), torch.zeros(3, 1, 5))
    huge = brownian(_seeds(20_000), 1, 1, torch.full((20_000,), 2.0**40))  # beyond the grid's last point
    assert abs(float(huge.double().std()) / 2.0**20 - 1) < 0.05
    tiny = brownian(_seeds(20_000), 1, 1, torch.full((20_000,), 1e-40))  # below its first
    assert abs(float(tiny.double().std()) / 1e-20 - 1) < 0.05


def test_the_grid_and_its_cells() -> None:
    t = grid_variance(torch.arange(1 << LEVELS, dtype=torch.int64) + 1)
    assert bool((t[1:] > t[:-1]).all())
    assert same_cell(2.0, 2.0 * (1 + 1e-5))
    assert not same_cell(2.0, 2.0 * 1.01)
    assert not same_cell(0.0, 1e-9)


def test_keyed_noise_uses_the_chain_and_seeded_noise_stays_one_normal_per_logit() -> None:
    z = torch.zeros(1000, 10)
    keys = torch.arange(1000)
    low = modulate_logits(z, Modulation(sigma=1.0), noise=KeyedNoise("chain secret"), keys=keys).double()
    high = modulate_logits(z, Modulation(sigma=3.0), noise=KeyedNoise("chain secret"), keys=keys).double()
    assert not torch.allclose(high, 3 * low)  # the published scheme: the same eps scaled by sigma
    assert abs(float(torch.corrcoef(torch.stack([low.flatten(), (high - low).flatten()]))[0, 1])) < 0.03
    seeded_low = modulate_logits(z, Modulation(sigma=1.0), noise=SeededNoise(0), keys=keys)
    seeded_high = modulate_logits(z, Modulation(sigma=3.0), noise=SeededNoise(0), keys=keys)
    assert torch.allclose(seeded_high, 3 * seeded_low)  # common random numbers, for sweeps
