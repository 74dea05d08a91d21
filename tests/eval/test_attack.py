from __future__ import annotations

import pytest
import torch

from aimod.errors import InvalidArgumentError
from aimod.eval.attack import majority_vote, perturb_pixels


def test_majority_vote_takes_the_most_frequent_and_the_smallest_id_on_ties() -> None:
    decisions = torch.tensor([[2, 2, 1], [0, 1, 1], [3, 1, 2]])
    assert majority_vote(decisions, 4).tolist() == [2, 1, 1]


def test_majority_vote_wants_inputs_by_queries() -> None:
    with pytest.raises(InvalidArgumentError, match="inputs, queries"):
        majority_vote(torch.tensor([1, 2]), 3)
    with pytest.raises(InvalidArgumentError, match=r"0\.\.2"):
        majority_vote(torch.tensor([[1, 3]]), 3)


def test_pixel_perturbation_changes_count_pixels_by_size_and_keeps_the_range() -> None:
    images = torch.full((50, 8, 8), 128, dtype=torch.uint8)
    images[0] = 255
    out = perturb_pixels(images, "pixels", 3, torch.Generator().manual_seed(0), count=2)
    diff = out.to(torch.int16) - images.to(torch.int16)
    assert out.dtype == torch.uint8
    assert images[1, 0, 0] == 128
    assert set(diff[1:].unique().tolist()) <= {-6, -3, 0, 3, 6}  # two picks may land on one pixel
    assert ((diff[1:] != 0).flatten(1).sum(1) <= 2).all()
    assert bool((diff[1:] != 0).any())
    assert (out[0] >= 249).all()  # 255 + 3 clips to 255 instead of wrapping around


def test_gaussian_perturbation_is_seeded() -> None:
    images = torch.randint(0, 256, (4, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = perturb_pixels(images, "gauss", 2.0, torch.Generator().manual_seed(5))
    b = perturb_pixels(images, "gauss", 2.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, images)


def test_bad_kinds_and_dtypes_are_errors() -> None:
    g = torch.Generator()
    with pytest.raises(InvalidArgumentError, match="uint8"):
        perturb_pixels(torch.zeros(1, 2, 2), "gauss", 1.0, g)
    with pytest.raises(InvalidArgumentError, match="'pixels' or 'gauss'"):
        perturb_pixels(torch.zeros(1, 2, 2, dtype=torch.uint8), "blur", 1.0, g)  # type: ignore[arg-type]
