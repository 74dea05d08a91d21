"""Drawing keyed noise only for the tokens that can win: the same greedy decision as the full operator, exactly.

The proof has three parts, each tested here: (1) every keyed normal is at most ``normal_bound()`` in magnitude
(all 2^24 quantised values checked); (2) the nested path is at most ``brownian_bound(σ²)`` for *any* normals so
bounded (every sign pattern of the 18 normals at their extreme, float32 rounding included); (3) the noisy values
therefore lie in ``[lo, hi]`` and a token whose ``hi`` is below the best ``lo`` cannot win, so the argmax over the
candidates, drawn bit for bit like the full path (``brownian_at``, ``brownian_pairs``), is the full argmax.
``modulate_for_argmax`` first draws the 16 best clean tokens and the focused ones; their noisy maximum is a real
value of the row, so it replaces ``max lo`` as the floor a token must be able to reach (a threshold on the clean
logit with a margin for rounding: a superset of those whose ``hi`` reaches it).
"""

from __future__ import annotations

import math

import pytest
import torch

from aimod import FieldNoise, KeyedNoise, Modulation, SeededNoise, modulate_logits
from aimod.chain import _N, LEVELS, _path, brownian, brownian_at, brownian_bound, brownian_pairs, grid_variance
from aimod.errors import InvalidArgumentError
from aimod.noise import _MASK24, _uniform24_to_normal, normal_bound
from aimod.redistribute import ModulationBatch, _noise_range, argmax_candidates, modulate_for_argmax, output_dtype

CPU = torch.device("cpu")
NOISE_SECRET = "prune test secret, long enough"
NOISE = KeyedNoise(NOISE_SECRET)
INF = math.inf

# variances: zero, subnormal-small, below the grid, grid nodes, inside cells, tier-like, beyond the grid
VARIANCES = [0.0, 1e-300, 2.0**-40, 2.0**-32, 1e-6, 0.01, 0.25, 1.0, 1.0001**2, 2.5**2, 4.0, 40.0**2, 1e6]
VARIANCES += [float(grid_variance(torch.tensor(i))) for i in (2, 777, _N // 2, _N // 2 + 1, _N - 1, _N)] + [2.0**40]


def test_the_normal_bound_is_the_largest_quantised_normal() -> None:
    every = torch.arange(_MASK24 + 1, dtype=torch.int64)
    largest = max(float(_uniform24_to_normal(part).abs().max()) for part in every.split(1 << 21))
    assert normal_bound() == largest
    assert normal_bound(CPU) == float(torch.tensor(largest, dtype=torch.float32))  # a float32 value
    assert 5.4199 < largest < 5.4200


@pytest.mark.parametrize("positions", [1, 3])
def test_brownian_at_is_the_gathered_path_bit_for_bit(positions: int) -> None:
    rows, vocab = len(VARIANCES), 4099
    seeds = NOISE.row_seeds(rows, torch.arange(rows) * 7919, CPU)
    variance = torch.tensor(VARIANCES, dtype=torch.float64)
    full = brownian(seeds, positions, vocab, variance)
    gen = torch.Generator().manual_seed(1)
    for width in (1, 2, 7, 8, 9, 16, 31, 64, 1000, vocab):
        ids = torch.randint(vocab, (rows, width), generator=gen)
        ids[:, 0] = vocab - 1  # the odd last class and repeats
        expected = full.gather(2, ids[:, None, :].expand(rows, positions, width))
        assert torch.equal(brownian_at(seeds, positions, ids, variance), expected)
    # one (row, id) pair per entry, rows repeated: what the pruned operator asks for
    row = torch.randint(rows, (5000,), generator=gen)
    token = torch.randint(vocab, (5000,), generator=gen)
    flat = brownian_at(seeds[row], positions, token[:, None], variance[row])[:, :, 0]
    assert torch.equal(flat, full[row, :, token])
    if positions == 1:  # the pairs the pruned operator draws, schedule per row and normals per pair
        assert torch.equal(brownian_pairs(seeds, variance, row, token), full[row, 0, token])
        assert torch.equal(brownian_pairs(seeds, variance, row[:0], token[:0]), full[:0, 0, 0])


def test_the_path_bound_holds_for_every_sign_pattern_of_extreme_normals_and_is_tight() -> None:
    """All 2^18 sign patterns of the 18 normals at ±normal_bound(): the exact extremes of the float32 path."""
    m = normal_bound()
    variance = torch.tensor(VARIANCES, dtype=torch.float64)
    rows, width = len(VARIANCES), LEVELS + 2
    patterns = torch.arange(1 << width, dtype=torch.int64)
    calls = iter(range(width))

    def draw(node: torch.Tensor) -> torch.Tensor:
        bit = torch.bitwise_right_shift(patterns, next(calls)).bitwise_and_(1).to(torch.float32)
        return (bit * 2 - 1).mul_(m).expand(rows, 1, -1).clone()  # (B, 1, 2^18): every pattern once per row

    worst = _path(torch.zeros(rows, dtype=torch.int64), variance, draw).abs().amax((1, 2)).double()
    bound = brownian_bound(variance, m)
    assert bool((worst <= bound).all())
    noisy = bound > 1e-30
    assert bool((worst[noisy] >= bound[noisy] * (1 - 1e-3)).all())  # Σ|weights| exactly, plus rounding slack
    assert float(bound[0]) < 1e-40  # σ = 0: no noise
    sigma = variance.sqrt()
    assert bool((bound[1:] >= m * sigma[1:]).all())  # larger than m·σ: a sum of 18 weighted normals


def test_the_path_bound_bounds_real_draws() -> None:
    rows = 64
    variance = torch.tensor(VARIANCES * 4 + [1.0] * (rows - 4 * len(VARIANCES)), dtype=torch.float64)[:rows]
    seeds = NOISE.row_seeds(rows, torch.arange(rows), CPU)
    largest = brownian(seeds, 4, 20_000, variance).abs().amax((1, 2)).double()
    assert bool((largest <= brownian_bound(variance, normal_bound())).all())


def _cases() -> list[tuple[str, torch.Tensor, list[Modulation]]]:
    gen = torch.Generator().manual_seed(7)
    out = []
    for scale, sigma in [(1.0, 1.0), (5.0, 1.0), (10.0, 0.3), (3.0, 1e-4), (1.0, 2.0**-17), (50.0, 400.0)]:
        z = torch.randn(6, 3000, generator=gen) * scale
        out.append((f"randn*{scale} sigma {sigma}", z, [Modulation(sigma=sigma)] * 6))
    # mixed tenants: identity rows, focus up and down on the leader and runners-up, other sigmas
    z = torch.randn(8, 5000, generator=gen) * 6
    lead = z.argsort(-1, descending=True)
    mods = [
        Modulation(sigma=1.0),
        Modulation(),
        Modulation(sigma=1.0, focus={int(lead[2, 0]): -3.0, int(lead[2, 1]): 2.0}),
        Modulation(focus={int(lead[3, 5]): 8.0}),
        Modulation(sigma=0.5, focus={int(lead[4, 0]): -50.0}),
        Modulation(),
        Modulation(sigma=3.0, focus={0: 1.0, 4999: -1.0}),
        Modulation(focus={int(lead[7, 0]): -0.001}),
    ]
    out.append(("mixed tenants", z, mods))
    # masked tokens, rows of all -inf, +inf
    z = torch.randn(5, 2000, generator=gen) * 4
    z[0, 100:] = -INF
    z[1] = -INF
    z[2, ::2] = -INF
    z[3, 17] = INF
    z[4, [3, 9]] = INF
    z2 = torch.randn(3, 500, generator=gen)
    z2[0, 100:140] = INF  # more +inf leaders than the operator draws first
    z2[1, 7] = math.nan
    z2[2, 300:] = -INF
    out.append(("nan and many +inf", z2, [Modulation(sigma=1.0)] * 3))
    out.append(("masked", z, [Modulation(sigma=1.0), Modulation(sigma=1.0), Modulation(sigma=2.0, focus={5: 1.0}),
                              Modulation(sigma=1.0), Modulation(sigma=1.0)]))  # fmt: skip
    # exact ties: a focus-only row leaves the tied leaders untouched (the lowest index wins)
    z = torch.zeros(3, 1000)
    z[:, [10, 20, 30]] = 5.0
    out.append(("ties", z, [Modulation(focus={500: 1.0}), Modulation(focus={20: -1.0}), Modulation(focus={999: 0.1})]))
    # a huge vocabulary
    z = torch.randn(2, 300_000, generator=gen) * 3
    out.append(("huge vocab", z, [Modulation(sigma=1.0), Modulation(sigma=0.1, focus={299_999: 9.0})]))
    # logits so large that the operator works in float64, and bfloat16 logits
    z = torch.randn(3, 1000, generator=gen) * 2 + 1e4
    out.append(("float64 work", z, [Modulation(sigma=1e-3)] * 3))
    out.append(("bfloat16", (torch.randn(3, 1000, generator=gen) * 5).bfloat16(), [Modulation(sigma=0.7)] * 3))
    return out


def _at_the_bound(modulation: Modulation) -> torch.Tensor:
    """Three rows led by token 1 at 10: token 3 at the lowest float32 that is a candidate, one ulp below, one above."""
    plan = ModulationBatch.build(modulation, 1, 8)

    def kept(y: torch.Tensor) -> bool:
        z = torch.zeros(1, 8)
        z[0, 1], z[0, 3] = 10.0, y
        return bool(argmax_candidates(z, plan, torch.float32)[0, 3])

    lo_v, hi_v = torch.tensor(-1e4), torch.tensor(10.0)
    assert not kept(lo_v)
    assert kept(hi_v)
    while bool(torch.nextafter(lo_v, hi_v) < hi_v):
        mid = ((lo_v.double() + hi_v.double()) / 2).float()
        if bool(mid == lo_v) or bool(mid == hi_v):
            mid = torch.nextafter(lo_v, hi_v)
        lo_v, hi_v = (lo_v, mid) if kept(mid) else (mid, hi_v)
    z = torch.zeros(3, 8)
    z[:, 1] = 10.0
    z[:, 3] = torch.stack([hi_v, lo_v, torch.nextafter(hi_v, torch.tensor(INF))])
    return z


@pytest.mark.parametrize("case", range(len(_cases())))
def test_the_pruned_decision_is_the_full_decision(case: int) -> None:
    name, z, mods = _cases()[case]
    for salt in range(6):  # several keys: several noise draws per batch
        keys = torch.arange(z.shape[0]) + 1000 * salt + case
        full = modulate_logits(z, mods, noise=NOISE, keys=keys, check_finite=False)
        fast = modulate_for_argmax(z, mods, noise=NOISE, keys=keys)
        assert torch.equal(fast.argmax(-1), full.argmax(-1)), name
        assert fast.dtype == full.dtype
        kept = fast != -INF
        torch.testing.assert_close(fast[kept], full[kept], rtol=0, atol=0, equal_nan=True)  # bit for bit
        plan = ModulationBatch.build(mods, *z.shape)
        for row in plan.identity_rows:
            assert torch.equal(fast[row], z[row].to(fast.dtype))
        assert bool((fast[z.to(fast.dtype) == -INF] == -INF).all())  # masked stays masked


def test_near_ties_at_exactly_the_bound() -> None:
    gen = torch.Generator().manual_seed(3)
    for sigma, focus in [(1.0, {}), (0.01, {}), (300.0, {}), (1.0, {3: 2.0}), (1.0, {1: -2.0}), (0.0, {3: 4.0})]:
        modulation = Modulation(sigma=sigma, focus=focus)
        z = _at_the_bound(modulation)
        plan = ModulationBatch.build(modulation, 3, 8)
        lo, hi = _noise_range(z, plan, torch.float32)
        assert float(hi[0, 3]) == float(lo[0].max())  # token 3's highest value ties the best lowest one
        assert float(hi[1, 3]) < float(lo[1].max())
        assert argmax_candidates(z, plan, torch.float32)[:, 3].tolist() == [True, False, True]
        for _ in range(30):
            keys = torch.randint(1 << 62, (3,), generator=gen)
            full = modulate_logits(z, plan, noise=NOISE, keys=keys)
            fast = modulate_for_argmax(z, plan, noise=NOISE, keys=keys)
            assert torch.equal(fast.argmax(-1), full.argmax(-1)), (sigma, focus)


@pytest.mark.parametrize("sigma", [0.0, 1e-3, 1.0, 7.0, 2.0**20])
def test_every_noisy_value_lies_between_lo_and_hi(sigma: float) -> None:
    """The bound end to end: 2,000 rows of full noisy logits, focus up and down, each value inside [lo, hi]."""
    rows, vocab = 2000, 512
    z = torch.randn(rows, vocab, generator=torch.Generator().manual_seed(5)) * 3
    modulation = Modulation(sigma=sigma, focus={7: 2.0, 9: -3.0, 511: 0.5})
    plan = ModulationBatch.build(modulation, rows, vocab)
    work = output_dtype(z, plan)
    full = modulate_logits(z, plan, noise=NOISE, keys=torch.arange(rows))
    lo, hi = _noise_range(z, plan, work)
    assert bool((lo <= full).all())
    assert bool((full <= hi).all())
    gap = (hi - lo).amax(0) / 2  # and not much wider than the noise reaches: the bound is per row, ~5.5-16 σ
    u = float(brownian_bound(torch.tensor([sigma], dtype=torch.float64).square(), normal_bound())[0])
    assert float(gap[0]) <= u * (1 + 1e-6) + 1e-6 * abs(float(z.abs().max()))


def test_float64_work_rounded_to_float32_keeps_every_token_that_could_tie_there() -> None:
    z = torch.zeros(1, 64, dtype=torch.float32) + 3e4
    z[0, 40] += 2e-3
    plan = ModulationBatch.build(Modulation(sigma=1e-6), 1, 64)
    assert output_dtype(z, plan) == torch.float64
    for salt in range(50):
        keys = torch.tensor([salt])
        full = modulate_logits(z, plan, noise=NOISE, keys=keys).to(torch.float32)
        fast = modulate_for_argmax(z, plan, noise=NOISE, keys=keys, result_dtype=torch.float32).to(torch.float32)
        assert torch.equal(fast.argmax(-1), full.argmax(-1))


def test_only_keyed_noise_and_2d_logits() -> None:
    z = torch.zeros(2, 5)
    with pytest.raises(InvalidArgumentError, match="KeyedNoise"):
        modulate_for_argmax(z, Modulation(sigma=1.0), noise=SeededNoise(0), keys=torch.arange(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        modulate_for_argmax(z[None], Modulation(sigma=1.0), noise=NOISE, keys=torch.arange(2))
    assert torch.equal(modulate_for_argmax(z, Modulation(), noise=NOISE, keys=torch.arange(2)), z)


FIELDS = {"text field": FieldNoise.for_text("prune test secret, long enough"), "field": FieldNoise(NOISE_SECRET)}


@pytest.mark.parametrize("case", [i for i, c in enumerate(_cases()) if c[0] != "huge vocab"])
@pytest.mark.parametrize("kind", list(FIELDS))
def test_the_pruned_decision_under_the_field_is_the_full_decision(case: int, kind: str) -> None:
    """The field's bound is its largest amplitude column norm; its values at the pairs are summed one by one."""
    name, z, mods = _cases()[case]
    field = FIELDS[kind]
    for salt in range(3):
        keys = torch.arange(z.shape[0]) + 1000 * salt + case
        full = modulate_logits(z, mods, noise=field, keys=keys, check_finite=False)
        fast = modulate_for_argmax(z, mods, noise=field, keys=keys)
        assert torch.equal(fast.argmax(-1), full.argmax(-1)), name
        assert fast.dtype == full.dtype
        kept = fast != -INF
        torch.testing.assert_close(fast[kept], full[kept], rtol=1e-6, atol=1e-30, equal_nan=True)
        finite = z.to(fast.dtype).isfinite().all(-1)  # rows the field can draw (others are NaN throughout)
        assert bool((fast[finite][z.to(fast.dtype)[finite] == -INF] == -INF).all())  # masked stays masked


def test_the_field_bound_holds_for_real_draws() -> None:
    field = FieldNoise.for_text("prune test secret, long enough")
    z = torch.randn(400, 3000, generator=torch.Generator().manual_seed(9)) * 4
    for sigma in (0.1, 1.0, 30.0):
        sigmas = torch.full((400,), sigma)
        u = field.utility(z[:, None, :], sigmas, field.row_seeds(400, torch.arange(400), CPU))
        bound = field.utility_bound(sigmas, 3000)
        assert bool((u.abs().amax((1, 2)).double() <= bound).all())
        assert float(bound[0]) < 14 * sigma  # sqrt(64) = 8 σ per column on average, the largest about 11 σ
