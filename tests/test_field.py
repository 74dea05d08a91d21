"""FieldNoise: exact N(0, sigma^2) per query, smooth in the clean logits, nested across tiers, batch-invariant."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from aimod import FieldNoise, InvalidArgumentError, Modulation, modulate_logits, theory

Z = torch.tensor([[3.0, 1.0, 0.5, -1.0, 2.5]])


def _noise_at(z: torch.Tensor, sigma: float, secrets: int, **kwargs: float) -> torch.Tensor:
    """The utility noise one query gets under `secrets` different secrets: (secrets, C)."""
    out = []
    for s in range(secrets):
        noise = FieldNoise(f"field test secret {s:06d}", **kwargs)  # type: ignore[arg-type]
        out.append(modulate_logits(z, Modulation(sigma=sigma), noise=noise, keys=torch.tensor([0]))[0] - z[0])
    return torch.stack(out).double()


def test_one_query_gets_exactly_normal_noise_independent_across_classes() -> None:
    x = _noise_at(Z, 2.0, 1200, features=16) / 2.0
    n = x.numel()
    assert abs(float(x.mean())) < 4 / math.sqrt(n)
    assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / n)
    assert stats.kstest(x.flatten().numpy(), "norm").pvalue > 1e-3
    corr = torch.corrcoef(x.T)
    assert float((corr - torch.eye(5)).abs().max()) < 4 / math.sqrt(1200)


def test_the_decision_follows_the_theory_per_query() -> None:
    z = torch.tensor([[2.0, 1.5, 0.0]])
    m = Modulation(sigma=1.0)
    decisions = (_noise_at(z, 1.0, 1200, features=16) + z.double()).argmax(1)
    observed = float((decisions == 0).double().mean())
    expected = float(theory.agreement(z, m)[0])
    assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / 1200)


def test_near_duplicates_share_noise_and_distant_queries_do_not() -> None:
    noise = FieldNoise("field smoothness secret", scale=3.0, features=1024)
    base = torch.randn(200, 10, generator=torch.Generator().manual_seed(0)) * 4
    keys = torch.arange(200)

    def eps(z: torch.Tensor) -> torch.Tensor:
        return (modulate_logits(z, Modulation(sigma=1.0), noise=noise, keys=keys) - z).double()

    e0 = eps(base)
    near = eps(base + 0.05 * torch.randn(base.shape, generator=torch.Generator().manual_seed(1)))
    far = eps(torch.randn(200, 10, generator=torch.Generator().manual_seed(2)) * 4)
    assert float(torch.corrcoef(torch.stack([e0.flatten(), near.flatten()]))[0, 1]) > 0.99
    assert abs(float(torch.corrcoef(torch.stack([e0.flatten(), far.flatten()]))[0, 1])) < 0.15
    # shifting every logit by a constant changes nothing (log_softmax of the clean logits)
    assert torch.allclose(eps(base + 7.0), e0, atol=1e-4)


def test_tiers_are_nested_in_the_field_too() -> None:
    low = _noise_at(Z, 1.0, 800, features=16)
    high = _noise_at(Z, 3.0, 800, features=16)
    increment = (high - low).flatten()
    assert abs(float(torch.corrcoef(torch.stack([low.flatten(), increment]))[0, 1])) < 4 / math.sqrt(4000)
    assert abs(float(increment.var()) / 8.0 - 1) < 0.1


def test_same_query_same_answer_alone_or_in_any_batch() -> None:
    noise = FieldNoise("field batch secret")
    z = torch.randn(37, 10, generator=torch.Generator().manual_seed(3))
    keys = torch.arange(37)
    mods = [Modulation(sigma=s) for s in [0.0, 1.0, 2.5] * 12 + [1.0]]
    together = modulate_logits(z, mods, noise=noise, keys=keys)
    for i in (0, 1, 2, 17, 36):
        alone = modulate_logits(z[i : i + 1], mods[i], noise=noise, keys=keys[i : i + 1])
        assert torch.equal(alone[0], together[i])
    assert torch.equal(together[0], z[0])  # sigma 0: untouched
    perm = torch.randperm(37, generator=torch.Generator().manual_seed(4))
    shuffled = modulate_logits(z[perm], [mods[i] for i in perm.tolist()], noise=noise, keys=keys[perm])
    assert torch.equal(shuffled, together[perm])


def test_segmentation_pixels_are_queries_of_their_own() -> None:
    """A pixel's noise is the field at its own clean logits: a shifted scene keeps each content pixel's noise."""
    noise = FieldNoise("field segmentation secret", features=8)
    z = torch.randn(2, 4, 6, 5)
    out = modulate_logits(z, Modulation(sigma=1.0), dim=1, noise=noise, keys=torch.tensor([0, 1]))
    assert out.shape == z.shape
    assert not torch.equal(out, z)
    shifted = modulate_logits(z.roll(1, dims=3), Modulation(sigma=1.0), dim=1, noise=noise, keys=torch.tensor([5, 6]))
    assert torch.equal(shifted, out.roll(1, dims=3))


def test_rows_keep_their_bits_in_any_batch_at_a_language_models_vocabulary() -> None:
    noise = FieldNoise("field vocabulary secret", features=32)
    z = torch.randn(5, 49152, generator=torch.Generator().manual_seed(5)) * 3
    together = modulate_logits(z, Modulation(sigma=0.5), noise=noise, keys=torch.arange(5))
    for i in range(5):
        alone = modulate_logits(z[i : i + 1], Modulation(sigma=0.5), noise=noise, keys=torch.tensor([i]))
        assert torch.equal(alone[0], together[i])


def test_bad_arguments_and_the_secret_never_shown() -> None:
    for kwargs in ({"scale": 0.0}, {"scale": math.inf}, {"features": 0}, {"clip": -1.0}, {"features": True}):
        with pytest.raises(InvalidArgumentError):
            FieldNoise("a long owner secret", **kwargs)  # type: ignore[arg-type]
    assert "hunter2" not in repr(FieldNoise("hunter2-hunter2-hunter2"))
