"""The quadrature rules against independent high-order references, and the closed forms against the rules."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import integrate, special

from aimod import Modulation, theory
from aimod.theory._engine import integrate as composite
from aimod.theory._retention import UtilityRetention
from tests.theory._helpers import reference_probability, trained_like_logits

SIGMAS = [0.05, 0.3, 1.0, 2.0, 4.0, 8.0, 20.0, 1000.0]


@pytest.fixture(scope="module")
def imagenet_like() -> torch.Tensor:
    return trained_like_logits(24, 1000, seed=3).double()


def test_fast_utility_rule_is_within_1e4_of_a_400_node_reference(imagenet_like: torch.Tensor) -> None:
    # The default rule behind agreement / agreement_curve (compressed gaps, 20-node Gauss–Legendre, float32)
    # against a plain 400-node rule over all 1000 classes in float64 (converged to 1e-14).
    clean = imagenet_like.argmax(1)
    curve = UtilityRetention(imagenet_like, clean)(SIGMAS)
    errors = torch.stack(
        [(curve[i] - reference_probability(imagenet_like, s, clean)).abs() for i, s in enumerate(SIGMAS)]
    )
    assert errors.max().item() < 1e-4
    assert errors.mean().item() < 2e-5


def test_fast_rule_handles_classes_other_than_the_top(imagenet_like: torch.Tensor) -> None:
    # accuracy uses the same rule for any class: the runner-up, and a class far behind (probability ~0)
    second = imagenet_like.topk(2, dim=1).indices[:, 1]
    last = imagenet_like.argmin(1)
    for classes in (second, last):
        for sigma in (0.5, 3.0, 30.0):
            fast = UtilityRetention(imagenet_like, classes)([sigma])[0]
            assert (fast - reference_probability(imagenet_like, sigma, classes)).abs().max().item() < 1e-4


@pytest.mark.parametrize("sigma", SIGMAS)
def test_composite_rule_matches_the_reference_for_every_class(sigma: float) -> None:
    z = trained_like_logits(6, 30, seed=4).double()
    probs = theory.class_probabilities(z, Modulation(sigma=sigma))
    classes = torch.arange(30).repeat_interleave(6)  # every (row, class) pair at once
    reference = reference_probability(z.repeat(30, 1), sigma, classes).view(30, 6).T
    assert (probs - reference).abs().max().item() < 1e-6
    assert (probs.sum(1) - 1).abs().max().item() < 1e-6


def test_class_probabilities_of_1000_classes_sum_to_one(imagenet_like: torch.Tensor) -> None:
    for sigma in (0.5, 5.0, 20.0):
        probs = theory.class_probabilities(imagenet_like[:8], Modulation(sigma=sigma))
        assert (probs.sum(1) - 1).abs().max().item() < 1e-4
        assert probs.min().item() >= 0


def test_fast_and_composite_rules_agree_with_focus_absent(imagenet_like: torch.Tensor) -> None:
    clean = imagenet_like.argmax(1)
    for sigma in (0.2, 2.0, 10.0):
        fast = UtilityRetention(imagenet_like, clean)([sigma])[0]
        general = composite(imagenet_like, sigma, [], [], clean, compress_plain=False)
        assert (fast - general).abs().max().item() < 1e-4


@pytest.mark.parametrize("sigma", [0.05, 0.5, 2.0, 8.0, 40.0])
def test_compressed_focus_path_matches_the_full_composite_rule(imagenet_like: torch.Tensor, sigma: float) -> None:
    # agreement with focus on 1000 classes compresses the non-focused classes; the per-class rule does not
    clean = imagenet_like.argmax(1)
    focus = {5: 2.0, int(clean[0]): -1.0}
    rows = imagenet_like[:8]
    compressed = theory.agreement(rows, Modulation(sigma=sigma, focus=focus))
    full = theory.class_probabilities(rows, Modulation(sigma=sigma, focus=focus)).gather(1, clean[:8, None])[:, 0]
    assert (compressed - full).abs().max().item() < 1e-4


def _scipy_focus_probability(z: list[float], sigma: float, focus: dict[int, float], c: int) -> float:
    """P(argmax = c) by scipy.integrate.quad over t of f_c(t) * prod_j F_j(t): a third, adaptive reference."""

    def law(j: int) -> tuple:
        a = focus.get(j, 0.0)
        if a == 0.0:
            return (
                lambda t: special.ndtr((t - z[j]) / sigma),
                lambda t: math.exp(-0.5 * ((t - z[j]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)),
            )
        omega, alpha = math.hypot(sigma, a), a / sigma
        return (
            lambda t: special.ndtr((t - z[j]) / omega) - 2 * special.owens_t((t - z[j]) / omega, alpha),
            lambda t: (
                2
                / omega
                * math.exp(-0.5 * ((t - z[j]) / omega) ** 2)
                / math.sqrt(2 * math.pi)
                * special.ndtr(alpha * (t - z[j]) / omega)
            ),
        )

    laws = [law(j) for j in range(len(z))]

    def integrand(t: float) -> float:
        value = laws[c][1](t)
        for j in range(len(z)):
            if j != c:
                value *= laws[j][0](t)
        return value

    spread = sigma + max(abs(a) for a in focus.values())
    lo, hi = min(z) - 10 * spread, max(z) + 10 * spread
    # breakpoints where the integrand turns on the scale sigma, then scipy's adaptive rule on each piece
    cuts = sorted({lo, hi} | {min(max(zj + k * sigma, lo), hi) for zj in z for k in (-8, -4, -2, -1, 0, 1, 2, 4, 8)})
    return sum(integrate.quad(integrand, a, b, limit=200, epsabs=1e-12)[0] for a, b in itertools.pairwise(cuts))


@pytest.mark.parametrize(
    ("sigma", "focus"),
    [(0.5, {1: 2.0}), (0.05, {2: 3.0, 0: -1.0}), (2.0, {0: -0.5, 3: 0.5}), (1e-3, {3: 4.0})],
)
def test_focus_with_utility_matches_adaptive_scipy_quadrature(sigma: float, focus: dict[int, float]) -> None:
    z = [1.0, 0.2, -0.5, 0.8]
    probs = theory.class_probabilities(torch.tensor([z], dtype=torch.float64), Modulation(sigma=sigma, focus=focus))
    for c in range(4):
        assert probs[0, c].item() == pytest.approx(_scipy_focus_probability(z, sigma, focus, c), abs=1e-6)


# -- closed forms ---------------------------------------------------------------------------------------------


def test_closed_forms_match_their_definitions() -> None:
    gap = torch.tensor([-1.0, 0.0, 0.5, 2.0, 10.0], dtype=torch.float64)
    promoted = theory.promotion_probability(gap, 1.5)
    expected = torch.where(gap <= 0, 1.0, 2 * torch.special.ndtr(-gap / 1.5))
    torch.testing.assert_close(promoted, expected)
    kept = theory.suppression_probability(gap, 1.5)
    torch.testing.assert_close(kept, torch.where(gap <= 0, 0.0, 2 * torch.special.ndtr(gap / 1.5) - 1))
    assert promoted.dtype == torch.float64
    assert theory.promotion_probability(torch.tensor([1.0]), 1.0).dtype == torch.float32


@pytest.mark.parametrize("strength", [0.3, 1.0, 4.0, -0.3, -1.0, -4.0])
def test_single_focus_closed_form_equals_the_general_quadrature(strength: float) -> None:
    # sigma 0 with one focused class uses promotion/suppression_probability; the composite rule must agree
    z = trained_like_logits(16, 12, seed=6).double() / 10
    for target in (0, 5, int(z[0].argmax())):
        closed = theory.class_probabilities(z, Modulation(focus={target: strength}))
        general = composite(z, 0.0, [target], [strength], None)
        torch.testing.assert_close(closed, general, atol=1e-7, rtol=0)


def test_promotion_and_suppression_are_the_limits_of_small_utility_noise() -> None:
    z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    gap = torch.tensor(1.0, dtype=torch.float64)
    for sigma in (1e-4, 1e-6):
        promoted = theory.class_probabilities(z, Modulation(sigma=sigma, focus={1: 2.0}))[0, 1]
        assert promoted.item() == pytest.approx(theory.promotion_probability(gap, 2.0).item(), abs=1e-4)
        kept = theory.class_probabilities(z, Modulation(sigma=sigma, focus={0: -2.0}))[0, 0]
        assert kept.item() == pytest.approx(theory.suppression_probability(gap, 2.0).item(), abs=1e-4)


def test_two_class_utility_agreement_is_the_pairwise_order_formula() -> None:
    z = torch.tensor([[0.0, 1.0], [3.0, -1.0], [0.2, 0.0]], dtype=torch.float64)
    lead = z.max(1).values - z.min(1).values
    for sigma in (0.1, 1.0, 7.0):
        expected = torch.special.ndtr(lead / (sigma * math.sqrt(2)))
        torch.testing.assert_close(theory.agreement(z, Modulation(sigma=sigma)), expected, atol=2e-5, rtol=0)
        torch.testing.assert_close(theory.class_probabilities(z, Modulation(sigma=sigma)).max(1).values, expected)
