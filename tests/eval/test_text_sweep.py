from __future__ import annotations

import pytest

from aimod import InvalidArgumentError
from aimod.data.facts import fact_items
from aimod.eval.text import text_sweep, token_agreement, word_rate

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
from tests.text._models import bpe_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def lm() -> tuple[object, object]:
    tokenizer = bpe_tokenizer()
    return tiny_llama(len(tokenizer), tokenizer.pad_token_id), tokenizer


def test_token_agreement_and_word_rate() -> None:
    assert token_agreement([[1, 2]], [[1, 2]]) == 1.0
    assert token_agreement([[1, 2], [3, 4]], [[2, 1], [3]]) == 0.25
    assert token_agreement([[]], [[]]) == 1.0
    assert word_rate(["Paris!", "Parisian", "a, b"], ["paris", "b"]) == pytest.approx(2 / 3)


def test_utility_sweep_on_a_tiny_model_reports_every_metric_with_intervals(lm: tuple[object, object]) -> None:
    model, tokenizer = lm
    items = fact_items()[::40]
    result = text_sweep(model, tokenizer, items, [0.0, 1.0, 8.0], seeds=2, max_new_tokens=4, batch_size=3)
    assert [p.value for p in result.points] == [0.0, 1.0, 8.0]
    assert list(result.points[0].measured) == ["exact_match", "mc_accuracy", "token_agreement", "first_token_agreement"]
    zero, _, big = result.points
    assert zero.measured["token_agreement"].mean == zero.measured["first_token_agreement"].mean == 1.0
    assert zero.measured["mc_accuracy"].mean == result.clean["mc_accuracy"]
    assert zero.predicted["first_token_agreement"] == pytest.approx(1.0)
    assert big.measured["token_agreement"].mean < 0.5
    assert big.predicted["first_token_agreement"] < 0.2
    assert result.num_samples == len(items)
    assert result.seeds == 2


def test_focus_sweep_counts_the_focused_words(lm: tuple[object, object]) -> None:
    model, tokenizer = lm
    items = fact_items()[::44]
    result = text_sweep(
        model,
        tokenizer,
        items,
        [-6.0, 0.0, 6.0],
        kind="focus",
        focus_words=["Paris"],
        seeds=2,
        max_new_tokens=6,
        batch_size=5,
    )
    rates = [p.measured["word_rate"].mean for p in result.points]
    assert rates[0] == 0.0
    assert rates[2] > rates[1]
    assert result.focus_class == "Paris"


def test_bad_sweeps_raise(lm: tuple[object, object]) -> None:
    model, tokenizer = lm
    with pytest.raises(InvalidArgumentError, match="utility sigmas"):
        text_sweep(model, tokenizer, fact_items()[:2], [-1.0])
    with pytest.raises(InvalidArgumentError, match="focus_words"):
        text_sweep(model, tokenizer, fact_items()[:2], [1.0], kind="focus")
