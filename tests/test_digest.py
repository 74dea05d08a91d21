from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aimod import InvalidArgumentError, digest
from aimod.digest import digest_state, extend_state, finalize_state


def test_bytes_str_token_ids_and_uint8_tensors_agree() -> None:
    as_tensor = digest(torch.tensor([[104, 105]], dtype=torch.uint8))
    assert torch.equal(digest(b"hi"), as_tensor)
    assert torch.equal(digest("hi"), as_tensor)
    assert torch.equal(digest([[104, 105]]), as_tensor)
    assert torch.equal(digest([torch.tensor([104, 105])]), as_tensor)


def test_each_row_gets_its_own_key_independent_of_the_batch() -> None:
    rows = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    keys = digest(rows)
    assert keys.shape == (6,)
    assert keys.dtype == torch.int64
    assert len(set(keys.tolist())) == 6
    assert torch.equal(digest(rows[[4]]), keys[[4]])
    assert torch.equal(digest(rows.flip(0)), keys.flip(0))


def test_small_changes_change_the_key() -> None:
    image = torch.zeros(1, 3, 4, 4)
    changed = image.clone()
    changed[0, 2, 3, 3] = 1e-6
    assert digest(image) != digest(changed)
    assert digest([b"ab"]) != digest([b"ba"])
    assert digest([b"a"]) != digest([b"a\x00"])  # the length counts
    assert digest(torch.zeros(1, 4)) != digest(torch.zeros(1, 4, dtype=torch.float64))  # dtype counts


def test_float8_rows_hash_by_bits_not_by_truncated_value() -> None:
    if not hasattr(torch, "float8_e4m3fn"):
        pytest.skip("no float8 in this torch")
    a = torch.tensor([[0.1, 0.2]]).to(torch.float8_e4m3fn)
    b = torch.tensor([[0.3, 0.4]]).to(torch.float8_e4m3fn)
    assert digest(a) != digest(b)


def test_known_answer_pins_the_algorithm() -> None:
    assert digest([b"aimod"]).tolist() == KNOWN


KNOWN = [-6751153465198560749]


@given(st.lists(st.integers(0, 2**31 - 1), min_size=1, max_size=30))
def test_incremental_state_equals_the_full_digest(tokens: list[int]) -> None:
    ids = torch.tensor([tokens])
    state = digest_state(ids[:, :1])
    for position in range(1, len(tokens)):
        state = extend_state(state, ids[:, position], position)
    assert torch.equal(finalize_state(state, len(tokens)), digest(ids))


@pytest.mark.parametrize(
    "data",
    [torch.tensor(3.0), torch.zeros(0, 3), [1, 2, 3], [], 42, torch.zeros(2, 2, dtype=torch.complex64)],
    ids=["0-d", "empty-batch", "flat-int-list", "empty-list", "int", "complex"],
)
def test_bad_inputs_raise(data: object) -> None:
    with pytest.raises(InvalidArgumentError):
        digest(data)  # type: ignore[arg-type]
