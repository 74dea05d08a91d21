from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aimod import (
    InvalidArgumentError,
    InvalidKeysError,
    InvalidLogitsError,
    KeyedNoise,
    Modulation,
    ModulationBatch,
    SeededNoise,
    UnknownClassError,
    digest,
    modulate_logits,
)
from aimod.redistribute import output_dtype
from tests.conftest import DEVICES

SECRET = "test secret, not for production"
C = 7
sigmas = st.sampled_from([0.0, 0.3, 1.0, 5.0])
focus = st.dictionaries(st.integers(0, C - 1), st.sampled_from([-3.0, -0.5, 0.0, 0.5, 3.0]), max_size=3)
modulations = st.builds(Modulation, sigma=sigmas, focus=focus)
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])


def _logits(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))).to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@given(m=modulations, dtype=dtypes, seed=st.integers(0, 2**16), keyed=st.booleans())
def test_input_untouched_and_shape_device_kept_dtype_documented(
    device: str, m: Modulation, dtype: torch.dtype, seed: int, keyed: bool
) -> None:
    z = _logits(seed, 5, C, dtype=dtype).to(device)
    before = z.clone()
    if keyed:
        out = modulate_logits(z, m, noise=KeyedNoise(SECRET), keys=digest(z))
    else:
        out = modulate_logits(z, m, noise=SeededNoise(seed))
    assert torch.equal(z, before)
    assert out.shape == z.shape
    assert out.dtype == (z.dtype if m.is_identity else output_dtype(z, ModulationBatch.build(m, 5, C)))
    assert out.dtype in ((z.dtype,) if m.is_identity else (torch.float32, torch.float64))
    assert out.device == z.device
    assert out.data_ptr() != z.data_ptr()


@given(
    m=st.builds(Modulation, focus=st.dictionaries(st.integers(0, C - 1), st.just(0.0), max_size=2)),
    dtype=dtypes,
)
def test_identity_returns_the_input_bit_for_bit(m: Modulation, dtype: torch.dtype) -> None:
    z = _logits(0, 4, C, dtype=dtype)
    z[0, 0] = -0.0
    out = modulate_logits(z, m, noise=SeededNoise(0))
    assert torch.equal(_bits(out), _bits(z))


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def test_identity_rows_in_a_mixed_batch_are_kept_bit_for_bit() -> None:
    z = _logits(1, 3, C)
    z[1, 2] = -0.0
    out = modulate_logits(z, [Modulation(sigma=2.0), Modulation(), Modulation(focus={1: 3.0})], noise=SeededNoise(0))
    assert torch.equal(_bits(out[1]), _bits(z[1]))
    assert not torch.equal(out[0], z[0])


@given(m=modulations, seed=st.integers(0, 2**16))
def test_same_seed_or_key_gives_the_same_output(m: Modulation, seed: int) -> None:
    z = _logits(seed, 6, C)
    assert torch.equal(modulate_logits(z, m, noise=SeededNoise(seed)), modulate_logits(z, m, noise=SeededNoise(seed)))
    keys = digest(z)
    assert torch.equal(
        modulate_logits(z, m, noise=KeyedNoise(SECRET), keys=keys),
        modulate_logits(z, m, noise=KeyedNoise(SECRET), keys=keys),
    )


@given(m=modulations, row=st.integers(0, 63), seed=st.integers(0, 2**16))
def test_a_row_is_identical_alone_in_a_batch_of_64_and_permuted(m: Modulation, row: int, seed: int) -> None:
    z = _logits(seed, 64, C)
    noise = KeyedNoise(SECRET)
    batch = modulate_logits(z, m, noise=noise, keys=digest(z))
    alone = modulate_logits(z[row : row + 1], m, noise=noise, keys=digest(z[row : row + 1]))
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(seed))
    permuted = modulate_logits(z[perm], m, noise=noise, keys=digest(z[perm]))
    assert torch.equal(alone[0], batch[row])
    assert torch.equal(permuted, batch[perm])


@given(ms=st.lists(modulations, min_size=8, max_size=8), seed=st.integers(0, 2**16))
def test_per_row_modulations_equal_rows_modulated_one_by_one(ms: list[Modulation], seed: int) -> None:
    z = _logits(seed, 8, C)
    noise, keys = KeyedNoise(SECRET), digest(z)
    mixed = modulate_logits(z, ms, noise=noise, keys=keys)
    prebuilt = modulate_logits(z, ModulationBatch.build(ms, 8, C), noise=noise, keys=keys)
    assert torch.equal(mixed, prebuilt)
    for b, m in enumerate(ms):
        assert torch.equal(mixed[b], modulate_logits(z[b : b + 1], m, noise=noise, keys=keys[b : b + 1])[0])


def test_segmentation_logits_with_class_dim_1_match_the_channels_last_layout() -> None:
    z = _logits(2, 2, C, 5, 6)
    m = Modulation(sigma=1.0, focus={3: 2.0})
    keys = digest(z)
    out = modulate_logits(z, m, dim=1, noise=KeyedNoise(SECRET), keys=keys)
    last = modulate_logits(z.movedim(1, -1).contiguous(), m, dim=-1, noise=KeyedNoise(SECRET), keys=keys)
    assert out.is_contiguous()
    assert torch.equal(out, last.movedim(-1, 1))
    # every pixel gets its own draw
    noise_map = out - z
    assert noise_map[0, 0].unique().numel() == 30


def test_one_dimensional_logits_are_one_row() -> None:
    z = _logits(3, C)
    out = modulate_logits(z, Modulation(sigma=1.0), noise=SeededNoise(0))
    assert out.shape == (C,)
    assert torch.equal(out, modulate_logits(z[None], Modulation(sigma=1.0), noise=SeededNoise(0))[0])


def test_focus_is_one_signed_and_touches_only_focused_classes() -> None:
    z = _logits(4, 1000, C)
    out = modulate_logits(z, Modulation(focus={1: 2.0, 4: -3.0}), noise=SeededNoise(0))
    delta = out - z
    assert (delta[:, 1] >= 0).all()
    assert (delta[:, 4] <= 0).all()
    untouched = [c for c in range(C) if c not in (1, 4)]
    assert torch.equal(out[:, untouched], z[:, untouched])
    # half-normal: mean sigma*sqrt(2/pi), variance sigma^2 (1 - 2/pi)
    assert abs(float(delta[:, 1].mean()) - 2 * math.sqrt(2 / math.pi)) < 0.1
    assert abs(float(delta[:, 4].std()) - 3 * math.sqrt(1 - 2 / math.pi)) < 0.15


def test_utility_noise_has_the_requested_std_on_every_class() -> None:
    z = torch.zeros(2000, 50)
    delta = modulate_logits(z, Modulation(sigma=2.5), noise=SeededNoise(1))
    assert abs(float(delta.std()) - 2.5) < 0.02
    assert abs(float(delta.mean())) < 0.01


def test_focus_names_resolve_through_id2label() -> None:
    z = _logits(5, 3, 3)
    labels = {0: "cat", 1: "dog", 2: "bird"}
    named = modulate_logits(z, Modulation(focus={"dog": 1.0}), noise=SeededNoise(0), id2label=labels)
    by_id = modulate_logits(z, Modulation(focus={1: 1.0}), noise=SeededNoise(0))
    assert torch.equal(named, by_id)
    with pytest.raises(UnknownClassError, match="Did you mean 'dog'"):
        modulate_logits(z, Modulation(focus={"dgo": 1.0}), noise=SeededNoise(0), id2label=labels)


def test_minus_infinity_passes_through_when_finite_check_is_off() -> None:
    z = _logits(6, 2, C)
    z[0, 3] = -math.inf
    out = modulate_logits(z, Modulation(sigma=1.0, focus={3: 2.0}), noise=SeededNoise(0), check_finite=False)
    assert out[0, 3] == -math.inf
    assert torch.isfinite(out[1]).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_logits_raise(bad: float) -> None:
    z = _logits(7, 2, C)
    z[1, 1] = bad
    with pytest.raises(InvalidLogitsError, match="NaN") as info:
        modulate_logits(z, Modulation(sigma=1.0), noise=SeededNoise(0))
    assert "check_finite=False" in str(info.value)


@pytest.mark.parametrize(
    ("logits", "dim", "fragment"),
    [
        (torch.zeros(2, 3, dtype=torch.int64), -1, "floating"),
        (torch.tensor(1.0), -1, "at least one dim"),
        (torch.zeros(0, 3), -1, "non-empty"),
        (torch.zeros(2, 3), 2, "an int in [-2, 2)"),
        (torch.zeros(2, 3), 0, "batch dim 0"),
        ([[1.0, 2.0]], -1, "torch.Tensor"),
    ],
    ids=["int", "0-d", "empty", "dim-out-of-range", "dim-batch", "list"],
)
def test_bad_logits_and_dims_raise(logits: object, dim: int, fragment: str) -> None:
    with pytest.raises(InvalidLogitsError) as info:
        modulate_logits(logits, Modulation(sigma=1.0), dim=dim, noise=SeededNoise(0))  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_bad_modulation_noise_and_keys_raise() -> None:
    z = _logits(8, 3, C)
    with pytest.raises(InvalidArgumentError, match="one Modulation per row"):
        modulate_logits(z, [Modulation()] * 2, noise=SeededNoise(0))
    with pytest.raises(InvalidArgumentError, match=r"Modulation\.parse"):
        modulate_logits(z, "sigma=1", noise=SeededNoise(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="noise source"):
        modulate_logits(z, Modulation(sigma=1.0), noise=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeysError, match="digest"):
        modulate_logits(z, Modulation(sigma=1.0), noise=KeyedNoise(SECRET))
    with pytest.raises(InvalidArgumentError, match="ModulationBatch for 2 rows"):
        modulate_logits(z, ModulationBatch.build(Modulation(), 2, C), noise=SeededNoise(0))


@pytest.mark.gpu
def test_cuda_and_cpu_agree_for_keyed_noise() -> None:
    z = _logits(9, 16, 1000)
    m = Modulation(sigma=2.0, focus={5: 3.0})
    keys = digest(z)
    cpu = modulate_logits(z, m, noise=KeyedNoise(SECRET), keys=keys)
    cuda = modulate_logits(z.cuda(), m, noise=KeyedNoise(SECRET), keys=keys.cuda())
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-5)


# Issue 16: the identity checks finiteness; ties in low precision or at huge magnitudes follow the theory (50 %).


def test_identity_rejects_nan_as_documented() -> None:
    with pytest.raises(InvalidLogitsError, match="NaN"):
        modulate_logits(torch.tensor([[math.nan, 1.0]]), Modulation(), noise=SeededNoise(0))


@pytest.mark.parametrize(
    ("row", "dtype", "sigma"),
    [
        ([3.0, 3.0, 0.0], torch.bfloat16, 1e-3),
        ([3.0, 3.0, 0.0], torch.bfloat16, 0.1),
        ([3.0, 3.0, 0.0], torch.float16, 1e-3),
        ([1e4, 1e4, 0.0], torch.float32, 1e-3),
    ],
)
def test_ties_in_coarse_dtypes_are_broken_evenly(row: list[float], dtype: torch.dtype, sigma: float) -> None:
    z = torch.tensor([row], dtype=dtype).repeat(20_000, 1)
    out = modulate_logits(z, Modulation(sigma=sigma), noise=SeededNoise(16))
    assert out.dtype == (torch.float64 if dtype == torch.float32 else torch.float32)
    share = float((out.argmax(1) == 0).double().mean())
    assert abs(share - 0.5) < 0.02  # 20,000 draws: the standard error is 0.0035


def test_output_dtype_stays_float32_for_ordinary_logits() -> None:
    plan = ModulationBatch.build(Modulation(sigma=0.5, focus={1: 2.0}), 1, 3)
    assert output_dtype(torch.tensor([[30.0, 1.0, -math.inf]]), plan) == torch.float32
    assert output_dtype(torch.tensor([[30.0, 1.0, 0.0]], dtype=torch.float64), plan) == torch.float64
