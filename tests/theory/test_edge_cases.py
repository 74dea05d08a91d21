"""Edge cases and input checks of aimod.theory: ties, extreme sigmas, dtypes, shapes, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from aimod import (
    InvalidArgumentError,
    InvalidLogitsError,
    InvalidModulationError,
    Modulation,
    UnknownClassError,
    theory,
)

Z = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])


# -- ties and the limits of sigma -------------------------------------------------------------------------------


def test_no_noise_is_the_clean_argmax_first_index_on_ties() -> None:
    probs = theory.class_probabilities(Z, Modulation())
    torch.testing.assert_close(probs, torch.nn.functional.one_hot(Z.argmax(1), 4).float())
    assert probs[2].tolist() == [1.0, 0.0, 0.0, 0.0]  # three-way tie: the first index, as torch.argmax
    assert theory.agreement(Z, Modulation()).tolist() == [1.0, 1.0, 1.0]
    assert theory.agreement_curve(Z, [0.0])[0].tolist() == [1.0, 1.0, 1.0]


def test_tiny_sigma_breaks_ties_uniformly_and_keeps_clear_winners() -> None:
    tiny = Modulation(sigma=1e-6)
    probs = theory.class_probabilities(Z, tiny)
    torch.testing.assert_close(probs[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(probs[1], torch.tensor([0.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(probs[2], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(theory.agreement(Z, tiny), torch.tensor([1.0, 1.0, 1 / 3]), atol=1e-5, rtol=0)


def test_huge_sigma_is_chance() -> None:
    huge = Modulation(sigma=1e6)
    torch.testing.assert_close(theory.class_probabilities(Z, huge), torch.full((3, 4), 0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(theory.agreement(Z, huge), torch.full((3,), 0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(theory.agreement_curve(Z, [1e6])[0], torch.full((3,), 0.25), atol=1e-5, rtol=0)


def test_pure_focus_on_tied_classes() -> None:
    z = torch.tensor([[1.0, 1.0, 0.0]])
    # promoting the second of two tied leaders makes it win surely; suppressing the first hands the win over
    assert theory.class_probabilities(z, Modulation(focus={1: 0.5}))[0].tolist() == [0.0, 1.0, 0.0]
    assert theory.class_probabilities(z, Modulation(focus={0: -0.5}))[0].tolist() == [0.0, 1.0, 0.0]
    # suppressing a class that leads only by index (a tie) keeps it with probability 0
    assert theory.class_probabilities(z, Modulation(focus={0: -0.5, 2: 0.1}))[0, 0].item() == 0.0


def test_pure_focus_on_every_class_with_a_single_survivor() -> None:
    z = torch.tensor([[5.0, 0.0]], dtype=torch.float64)
    probs = theory.class_probabilities(z, Modulation(focus={0: -1.0, 1: 1.0}))
    # class 1 wins when |η1| + |η0| > 5, two half-normals of std 1: by symmetry 4·P(a > 0, b > 0, a + b > 5)
    inner = integrate.quad(lambda a: stats.norm.pdf(a) * stats.norm.sf(5 - a), 0, 5, epsabs=1e-14)[0]
    expected = 4 * (inner + 0.5 * stats.norm.sf(5))
    assert probs[0, 1].item() == pytest.approx(expected, rel=1e-6)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-9)


def test_two_classes_and_one_class() -> None:
    z2 = torch.tensor([[0.5, -0.5]])
    assert theory.agreement(z2, Modulation(sigma=1.0)).item() == pytest.approx(0.7602, abs=1e-4)  # Φ(1/√2)
    z1 = torch.tensor([[3.0], [-1.0]])
    assert theory.class_probabilities(z1, Modulation(sigma=2.0, focus={0: 1.0})).tolist() == [[1.0], [1.0]]
    assert theory.accuracy(z1, torch.tensor([0, 0]), Modulation(sigma=2.0)).tolist() == [1.0, 1.0]


def test_empty_batch() -> None:
    empty = torch.empty(0, 5)
    assert theory.class_probabilities(empty, Modulation(sigma=1.0)).shape == (0, 5)
    assert theory.agreement(empty, Modulation(sigma=1.0, focus={1: 1.0})).shape == (0,)
    assert theory.agreement_curve(empty, [0.0, 1.0]).shape == (2, 0)


# -- dtypes, devices, shapes, input left alone -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes(dtype: torch.dtype) -> None:
    z = Z.to(dtype)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    m = Modulation(sigma=0.8, focus={2: 1.0})
    for out in (
        theory.class_probabilities(z, m),
        theory.agreement(z, m),
        theory.accuracy(z, torch.tensor([0, 1, 2]), m),
        theory.agreement_curve(z, [0.5, 1.0]),
    ):
        assert out.dtype == expected_dtype
    reference = theory.class_probabilities(z.double(), m)  # the rounded logits, in full precision
    torch.testing.assert_close(theory.class_probabilities(z, m).double(), reference, atol=1e-6, rtol=0)


def test_inputs_are_not_modified() -> None:
    z = Z.clone()
    labels = torch.tensor([0, 1, 2])
    m = Modulation(sigma=1.0, focus={1: -1.0})
    theory.class_probabilities(z, m)
    theory.accuracy(z, labels, m)
    theory.accuracy_curve(z, labels, [0.0, 2.0])
    theory.sigma_for(z, 0.5)
    assert torch.equal(z, Z)
    assert labels.tolist() == [0, 1, 2]


def test_curves_equal_the_single_sigma_functions() -> None:
    gen = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(20, 7, generator=gen, dtype=torch.float64)
    labels = torch.randint(7, (20,), generator=gen)
    sigmas = torch.tensor([3.0, 0.0, 0.4, 1.5])  # any order
    focus = {0: 1.0}
    agree = theory.agreement_curve(z, sigmas, focus=focus)
    correct = theory.accuracy_curve(z, labels, sigmas, focus=focus)
    plain = theory.agreement_curve(z, sigmas)
    for i, sigma in enumerate(sigmas.tolist()):
        m = Modulation(sigma=sigma, focus=focus)
        torch.testing.assert_close(agree[i], theory.agreement(z, m))
        torch.testing.assert_close(correct[i], theory.accuracy(z, labels, m))
        torch.testing.assert_close(plain[i], theory.agreement(z, Modulation(sigma=sigma)))
        # the per-class probabilities (another rule) give the same agreement
        probs = theory.class_probabilities(z, m)
        torch.testing.assert_close(agree[i], probs.gather(1, z.argmax(1, keepdim=True))[:, 0], atol=1e-5, rtol=0)


def test_named_focus_classes() -> None:
    names = {0: "cat", 1: "dog", 2: "bird", 3: "fish"}
    by_name = theory.class_probabilities(Z, Modulation(sigma=0.5, focus={"dog": 2.0}), id2label=names)
    by_id = theory.class_probabilities(Z, Modulation(sigma=0.5, focus={1: 2.0}))
    torch.testing.assert_close(by_name, by_id)


@given(
    logits=st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    sigma=st.sampled_from([0.0, 0.01, 0.3, 2.0]),
    strengths=st.lists(st.sampled_from([0.0, 0.2, -0.2, 1.5, -1.5, 6.0]), min_size=3, max_size=3),
)
def test_probabilities_are_a_distribution(logits: list[float], sigma: float, strengths: list[float]) -> None:
    z = torch.tensor(logits, dtype=torch.float64).view(2, 3)
    probs = theory.class_probabilities(z, Modulation(sigma=sigma, focus=dict(enumerate(strengths))))
    assert probs.min().item() >= 0.0
    assert probs.max().item() <= 1.0 + 1e-9
    torch.testing.assert_close(probs.sum(1), torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)


# -- bad input ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "logits",
    [
        torch.tensor([[1.0, float("nan")]]),
        torch.tensor([[1.0, float("inf")]]),
        torch.tensor([[1.0, -float("inf")]]),
        torch.tensor([1.0, 2.0]),
        torch.zeros(2, 3, 4),
        torch.zeros(3, 0),
        torch.tensor([[1, 2]]),
        [[1.0, 2.0]],
    ],
    ids=["nan", "inf", "-inf", "1-D", "3-D", "no classes", "integer", "list"],
)
def test_bad_logits_are_rejected(logits: object) -> None:
    for call in (
        lambda: theory.class_probabilities(logits, Modulation(sigma=1.0)),  # type: ignore[arg-type]
        lambda: theory.agreement_curve(logits, [1.0]),  # type: ignore[arg-type]
        lambda: theory.sigma_for(logits, 0.5),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidLogitsError, match="logits"):
            call()


def test_wrong_ndim_message_says_how_to_fix() -> None:
    with pytest.raises(InvalidLogitsError, match=r"shape \(2,\).*unsqueeze\(0\)"):
        theory.agreement(torch.tensor([1.0, 2.0]), Modulation(sigma=1.0))


@pytest.mark.parametrize(
    "labels",
    [
        torch.tensor([0, 1]),
        torch.tensor([[0, 1, 2]]),
        torch.tensor([0.0, 1.0, 2.0]),
        torch.tensor([0, 1, 4]),
        torch.tensor([-1, 0, 0]),
        [0, 1, 2],
    ],
    ids=["short", "2-D", "float", "too large", "negative", "list"],
)
def test_bad_labels_are_rejected(labels: object) -> None:
    with pytest.raises(InvalidArgumentError, match="labels"):
        theory.accuracy(Z, labels, Modulation(sigma=1.0))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="labels"):
        theory.accuracy_curve(Z, labels, [1.0])  # type: ignore[arg-type]


@pytest.mark.parametrize("sigmas", [[-1.0], [float("nan")], torch.ones(2, 2), "1.0", [True], 3.0])
def test_bad_sigmas_are_rejected(sigmas: object) -> None:
    with pytest.raises(InvalidArgumentError, match="sigmas"):
        theory.agreement_curve(Z, sigmas)  # type: ignore[arg-type]


def test_unknown_focus_class_is_rejected() -> None:
    with pytest.raises(UnknownClassError, match="Did you mean 'dog'"):
        theory.agreement(Z, Modulation(focus={"dgo": 1.0}), id2label=["cat", "dog", "bird", "fish"])
    with pytest.raises(UnknownClassError):
        theory.class_probabilities(Z, Modulation(focus={7: 1.0}))
    with pytest.raises(UnknownClassError):
        theory.agreement_curve(Z, [1.0], focus={"cat": 1.0})  # no id2label


def test_bad_modulation_and_focus_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="modulation"):
        theory.agreement(Z, 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="sigma=0"):
        theory.agreement_curve(Z, [1.0], focus=Modulation(sigma=2.0))
    with pytest.raises(InvalidModulationError):
        theory.agreement_curve(Z, [1.0], focus={1: float("nan")})


def test_closed_forms_reject_bad_sigma_and_nan() -> None:
    for sigma in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidArgumentError, match="sigma"):
            theory.promotion_probability(torch.tensor([1.0]), sigma)
    with pytest.raises(InvalidArgumentError, match="lead"):
        theory.suppression_probability(torch.tensor([float("nan")]), 1.0)
    assert theory.promotion_probability(1.0, 1.0).item() == pytest.approx(0.3173, abs=1e-4)
