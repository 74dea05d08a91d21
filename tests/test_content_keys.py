"""Content keys: near-duplicate images share noise under the field and the fingerprint, not under exact keying."""

from __future__ import annotations

import torch

from aimod import FieldNoise, KeyedNoise, Modulation
from aimod.catalog import load
from aimod.content_keys import exact_keys, fingerprint_keys
from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.server.config import ServerSettings
from aimod.server.vision import VisionRow, VisionService


def test_fingerprint_ignores_shifts_and_tiny_changes_but_not_the_ranking() -> None:
    z = torch.tensor([[5.1, 2.3, 1.2, 0.4, -1.3, -3.3]])  # relative logits away from the 0.5 grid
    assert fingerprint_keys(z, 0.5) == fingerprint_keys(z + 10.0, 0.5)  # a shift of every logit
    assert fingerprint_keys(z, 0.5) == fingerprint_keys(z + 1e-3 * torch.randn(z.shape), 0.5)
    assert fingerprint_keys(z, 0.5) != fingerprint_keys(z[:, [1, 0, 2, 3, 4, 5]], 0.5)
    assert fingerprint_keys(z, 0.5) != fingerprint_keys(z * 2, 0.5)
    seg = torch.randn(2, 4, 8, 8)
    assert fingerprint_keys(seg, 0.5).shape == (2,)


def test_exact_keys_see_every_pixel_and_the_shape() -> None:
    a = torch.zeros(1, 4, 6, dtype=torch.uint8)
    assert exact_keys([a]) != exact_keys([a.reshape(1, 6, 4)])
    b = a.clone()
    b[0, 3, 5] = 1
    assert exact_keys([a]) != exact_keys([b])


def test_near_duplicates_get_the_same_answer_with_the_field_and_the_fingerprint_only() -> None:
    loaded = load("resnet-fashion")
    images, _ = load_fashion_mnist("test")
    gen = torch.Generator().manual_seed(0)
    modulation = Modulation(sigma=6.0)
    answers = {}
    for keying in ("field", "fingerprint", "exact"):
        noise = FieldNoise("s" * 20) if keying == "field" else KeyedNoise("s" * 20)
        service = VisionService(loaded, noise, ServerSettings(keying=keying, max_batch=8))
        same = 0
        for image in images[:16]:
            copies = image[None].repeat(6, 1, 1).to(torch.int16)
            for copy in copies[1:]:
                where = torch.randint(0, copy.numel(), (4,), generator=gen)
                copy.view(-1)[where] += torch.tensor([1, -1, 1, -1], dtype=torch.int16)
            rows = [VisionRow(c.clamp(0, 255).to(torch.uint8)[None], modulation, "classify", 10) for c in copies]
            out = [r["labels"][0]["class_id"] for r in service.run(rows)]  # type: ignore[index]
            same += sum(o == out[0] for o in out[1:])
        answers[keying] = same / (16 * 5)
    assert answers["field"] >= 0.95
    assert answers["fingerprint"] >= 0.85
    assert answers["exact"] <= 0.6  # fresh noise per copy: the answer changes as often as sigma 6 makes it
