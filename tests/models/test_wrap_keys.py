"""``aimod.wrap(keys=...)``: the wrapper keyed by the server's content keys decides as the server does."""

from __future__ import annotations

import torch

from aimod import KeyedNoise, Modulation, wrap
from aimod.catalog import load
from aimod.content_keys import exact_keys, fingerprint_keys
from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.server.config import ServerSettings
from aimod.server.vision import VisionRow, VisionService

SECRET = "wrap-keys-secret-0123456789"


def test_wrap_with_content_keys_gives_the_servers_vision_decisions() -> None:
    loaded = load("resnet-fashion")
    pixels, _ = load_fashion_mnist("test")
    images = pixels[:8, None]
    noise = KeyedNoise(SECRET)
    modulation = Modulation(sigma=3.0)
    settings = ServerSettings(keying="fingerprint", max_batch=8)
    served = VisionService(loaded, noise, settings).run([VisionRow(im, modulation, "classify", 1) for im in images])
    server_decisions = [answer["labels"][0]["class_id"] for answer in served]  # type: ignore[index]

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return loaded.logits(x)  # type: ignore[no-any-return]

    wrapped = wrap(Net(), modulation, noise=noise, keys=lambda x, z: fingerprint_keys(z, settings.fingerprint_step))
    assert wrapped(loaded.preprocess(images)).argmax(1).tolist() == server_decisions


def test_wrap_keys_hook_replaces_the_input_digest() -> None:
    net = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    calls: list[tuple[int, ...]] = []

    def keys(inputs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(logits.shape))
        return exact_keys([row[None] for row in (inputs * 100).to(torch.uint8)])

    wrapped = wrap(net, "sigma=2", noise=KeyedNoise(SECRET), keys=keys)
    assert torch.equal(wrapped(x), wrapped(x))
    assert calls == [(5, 3), (5, 3)]
