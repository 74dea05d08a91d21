from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from aimod import InvalidArgumentError, InvalidKeysError, KeyedNoise, SeededNoise
from aimod._hash import mix64, mix64_int
from aimod.noise import FOCUS_STREAM, UTILITY_STREAM, normals, normals_at

CPU = torch.device("cpu")


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_mix64_matches_the_python_reference(values: list[int]) -> None:
    assert mix64(torch.tensor(values, dtype=torch.int64)).tolist() == [mix64_int(v) for v in values]


def _keyed_seeds(n: int, start: int = 0) -> torch.Tensor:
    return KeyedNoise("statistics test secret").row_seeds(n, torch.arange(start, start + n), CPU)


@pytest.fixture(scope="module")
def sample() -> torch.Tensor:
    """256 neighbouring keys x 4 positions x 1000 classes = 1,024,000 normals."""
    return normals(_keyed_seeds(256), 4, 1000)


def test_normals_have_mean_zero_and_unit_variance(sample: torch.Tensor) -> None:
    x = sample.double().flatten()
    n = x.numel()
    assert abs(float(x.mean())) < 4 / math.sqrt(n)
    assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / n)
    assert abs(float(stats.skew(x.numpy()))) < 0.02
    assert abs(float(stats.kurtosis(x.numpy()))) < 0.03


def test_normals_pass_a_kolmogorov_smirnov_test(sample: torch.Tensor) -> None:
    assert stats.kstest(sample.flatten().numpy(), "norm").pvalue > 1e-3


@pytest.mark.parametrize("threshold", [1.0, 2.0, 3.0, 4.0])
def test_normal_tails_have_gaussian_mass(sample: torch.Tensor, threshold: float) -> None:
    x = sample.flatten()
    expected = 2 * stats.norm.sf(threshold)
    observed = float((x.abs() > threshold).double().mean())
    std_err = math.sqrt(expected * (1 - expected) / x.numel())
    assert abs(observed - expected) < 5 * std_err + 1e-7


def test_normals_are_bounded_as_documented(sample: torch.Tensor) -> None:
    assert float(sample.abs().max()) <= 5.43
    assert torch.isfinite(sample).all()


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


def test_no_correlation_across_classes_rows_positions_or_streams(sample: torch.Tensor) -> None:
    bound = 5 / math.sqrt(sample[:, :, 1:].numel())
    assert abs(_corr(sample[:, :, 1:], sample[:, :, :-1])) < bound  # neighbouring classes
    assert abs(_corr(sample[1:], sample[:-1])) < bound  # neighbouring keys 0, 1, 2, ...
    assert abs(_corr(sample[:, 1:], sample[:, :-1])) < bound  # neighbouring positions
    other = normals(_keyed_seeds(256), 4, 1000, FOCUS_STREAM)
    assert abs(_corr(sample, other)) < bound  # utility vs focus stream
    # squares too: dependence that is not linear correlation
    assert abs(_corr(sample[:, :, 1:] ** 2, sample[:, :, :-1] ** 2)) < 2 * bound


def test_normals_at_equals_the_dense_draw_at_those_classes() -> None:
    seeds = _keyed_seeds(5)
    dense = normals(seeds, 3, 17, FOCUS_STREAM)
    ids = torch.tensor([[0, 16, 3], [1, 2, 2], [15, 8, 9], [4, 5, 6], [16, 0, 1]])
    picked = normals_at(seeds, 3, ids, FOCUS_STREAM)
    assert torch.equal(picked, torch.stack([dense[b][:, ids[b]] for b in range(5)]))


@given(st.integers(1, 40), st.integers(1, 40))
def test_a_class_noise_does_not_depend_on_the_number_of_classes(c1: int, c2: int) -> None:
    seeds = _keyed_seeds(3)
    small, large = sorted((c1, c2))
    assert torch.equal(normals(seeds, 2, large)[..., :small], normals(seeds, 2, small))


def test_known_answer_pins_the_algorithm() -> None:
    """Keyed noise is part of the API: the same secret and key must give these numbers forever."""
    seeds = KeyedNoise("known answer").row_seeds(2, torch.tensor([0, 123456789]), CPU)
    got = normals(seeds, 1, 4, UTILITY_STREAM)
    expected = torch.tensor(KNOWN_ANSWER)
    torch.testing.assert_close(got.flatten(), expected, rtol=0, atol=1e-6)


KNOWN_ANSWER = [-1.871791, 0.557376, -0.154089, -0.693231, 0.40741, -0.563779, 2.705101, -0.827011]


def test_keyed_noise_is_a_function_of_secret_and_key() -> None:
    keys = torch.tensor([5, 5, 6])
    a = KeyedNoise("secret one").row_seeds(3, keys, CPU)
    assert a[0] == a[1]
    assert a[0] != a[2]
    assert torch.equal(a, KeyedNoise(b"secret one").row_seeds(3, keys, CPU))
    assert not torch.equal(a, KeyedNoise("secret two").row_seeds(3, keys, CPU))


def test_keyed_noise_never_shows_its_secret() -> None:
    noise = KeyedNoise("hunter2-very-secret")
    assert "hunter2" not in repr(noise)
    assert "hunter2" not in str(vars(noise))


@pytest.mark.parametrize(
    "keys",
    [None, torch.tensor([1, 2]), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([[1, 2, 3]]), [1, 2, 3]],
    ids=["missing", "too-few", "float", "2d", "list"],
)
def test_keyed_noise_rejects_bad_keys(keys: object) -> None:
    with pytest.raises(InvalidKeysError, match="digest"):
        KeyedNoise("s").row_seeds(3, keys, CPU)  # type: ignore[arg-type]


def test_bad_secret_and_seed_raise() -> None:
    with pytest.raises(InvalidArgumentError, match="secret"):
        KeyedNoise("")
    with pytest.raises(InvalidArgumentError, match="seed"):
        SeededNoise(1.5)  # type: ignore[arg-type]


def test_seeded_noise_replays_and_draws_fresh_noise_per_call() -> None:
    a, b = SeededNoise(7), SeededNoise(7)
    first_a, first_b = a.row_seeds(4, None, CPU), b.row_seeds(4, None, CPU)
    assert torch.equal(first_a, first_b)
    second = a.row_seeds(4, None, CPU)
    assert not (second == first_a).any()
    assert len(set(first_a.tolist())) == 4
    assert not torch.equal(first_a, SeededNoise(8).row_seeds(4, None, CPU))
    keyed = torch.tensor([1, 2, 3, 4])
    assert torch.equal(a.row_seeds(4, keyed, CPU), b.row_seeds(4, keyed, CPU))


@pytest.mark.gpu
def test_cuda_gives_the_same_noise_as_cpu() -> None:
    keys = torch.arange(8)
    noise = KeyedNoise("cross-device")
    cpu = normals(noise.row_seeds(8, keys, CPU), 3, 1001)
    cuda = normals(noise.row_seeds(8, keys.cuda(), torch.device("cuda")), 3, 1001)
    assert torch.equal(noise.row_seeds(8, keys, CPU), noise.row_seeds(8, keys.cuda(), torch.device("cuda")).cpu())
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=2e-6)
