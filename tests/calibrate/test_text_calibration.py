from __future__ import annotations

import pytest
import torch

from aimod.calibrate import calibrate_text
from aimod.calibrate.text import _at, _solve

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
from tests.text._models import bpe_tokenizer, tiny_llama


def test_solve_and_interpolate_in_log_sigma() -> None:
    sigmas = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)
    curve = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    assert _solve(sigmas, curve, 0.7) == pytest.approx(10**-0.5)
    assert _at(sigmas, curve, 10**-0.5) == pytest.approx(0.7)
    assert _at(sigmas, curve, 0.0) == 1.0
    assert _solve(sigmas, curve, 0.05) == 10.0  # beyond the grid: its end
    assert _solve(sigmas, curve, 0.99) == 0.1  # never 0 (the clean model)
    bumpy = torch.tensor([0.9, 0.95, 0.1], dtype=torch.float64)  # measured noise: made non-increasing first
    assert _solve(sigmas, bumpy, 0.5) == pytest.approx(_solve(sigmas, torch.tensor([0.9, 0.9, 0.1]), 0.5))


def test_text_calibration_on_a_tiny_model_gives_monotone_tiers_with_intervals() -> None:
    tokenizer = bpe_tokenizer()
    model = tiny_llama(len(tokenizer), tokenizer.pad_token_id)
    prompts = ["Paris is", "The capital of", "Iron has the", "rome and", "Berlin too", "cities;", "symbol Fe", "Italy"]
    tiers, settings = calibrate_text(
        model, tokenizer, prompts, {"premium": 1.0, "standard": 0.8, "free": 0.4}, keys=1, max_new_tokens=6,
        batch_size=8, grid=6, bootstrap=50,
    )  # fmt: skip
    premium, standard, free = tiers
    assert premium.sigma == 0.0
    assert 0 < standard.sigma < free.sigma
    for t in (standard, free):
        assert t.predicted == pytest.approx(t.target, abs=0.1)
        assert t.low <= t.predicted <= t.high
        assert t.sigma_low <= t.sigma <= t.sigma_high
    assert settings["keys"] == 1
    assert set(settings["first_step_sigma"]) == {"premium", "standard", "free"}
