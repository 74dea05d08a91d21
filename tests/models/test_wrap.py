from __future__ import annotations

import pytest
import torch
from torch import nn

import aimod
from aimod import InvalidArgumentError, KeyedNoise, Modulation, SeededNoise, UnknownClassError
from aimod.models.wrap import extract_logits, replace_logits

SECRET = "wrap test secret"


class Segmenter(nn.Module):
    """1x1 conv at 1/4 resolution, like SegFormer's head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.avg_pool2d(x, 4))


class DictModel(nn.Module):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.lin = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.key: self.lin(x), "aux": x.sum(1)}


def test_classifier_same_input_same_answer_and_weights_untouched() -> None:
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    wrapped = aimod.wrap(net, Modulation(sigma=2.0), noise=KeyedNoise(SECRET))
    x = torch.randn(6, 4)
    out = wrapped(x)
    assert torch.equal(out, wrapped(x))
    assert torch.equal(out[2], wrapped(x[2:3])[0])  # a row alone gets the same answer
    assert not torch.equal(out, net(x))
    assert not out.requires_grad
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_identity_modulation_returns_the_model_output() -> None:
    net = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with torch.no_grad():
        assert torch.equal(aimod.wrap(net, "sigma=0", noise=SeededNoise(0))(x), net(x))


def test_segmenter_upsamples_to_label_size_by_default() -> None:
    seg = Segmenter()
    x = torch.rand(2, 3, 16, 16)
    out = aimod.wrap(seg, Modulation(sigma=1.0), noise=KeyedNoise(SECRET))(x)
    assert out.shape == (2, 4, 16, 16)
    at_logits = aimod.wrap(seg, Modulation(sigma=1.0), noise=KeyedNoise(SECRET), resolution="logits")(x)
    assert at_logits.shape == (2, 4, 4, 4)
    sized = aimod.wrap(seg, Modulation(sigma=1.0), noise=SeededNoise(0), label_size=(8, 8))(x)
    assert sized.shape == (2, 4, 8, 8)


@pytest.mark.parametrize("key", ["logits", "out"])
def test_dict_outputs_keep_their_other_entries(key: str) -> None:
    model = DictModel(key)
    x = torch.randn(3, 4)
    out = aimod.wrap(model, Modulation(sigma=1.0), noise=SeededNoise(0))(x)
    assert set(out) == {key, "aux"}
    assert torch.equal(out["aux"], x.sum(1))
    assert out[key].shape == (3, 3)


def test_transformers_outputs_keep_their_type() -> None:
    from transformers.modeling_outputs import ImageClassifierOutput

    class HFStyle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, pixel_values: torch.Tensor) -> ImageClassifierOutput:
            return ImageClassifierOutput(logits=self.lin(pixel_values))

    out = aimod.wrap(HFStyle(), Modulation(sigma=1.0), noise=KeyedNoise(SECRET))(pixel_values=torch.randn(2, 4))
    assert isinstance(out, ImageClassifierOutput)
    assert out.logits.shape == (2, 3)


def test_focus_names_come_from_the_model_config() -> None:
    class Configured(nn.Linear):
        def __init__(self) -> None:
            super().__init__(4, 3)
            self.config = type("Config", (), {"id2label": {0: "cat", 1: "dog", 2: "bird"}})()

    wrapped = aimod.wrap(Configured(), "dog=+50", noise=SeededNoise(0))
    assert (wrapped(torch.randn(20, 4)).argmax(1) == 1).float().mean() > 0.9
    with pytest.raises(UnknownClassError, match="Did you mean 'dog'"):
        aimod.wrap(Configured(), "dgo=+5", noise=SeededNoise(0))


def test_bad_arguments_raise() -> None:
    with pytest.raises(InvalidArgumentError, match="resolution"):
        aimod.wrap(nn.Linear(2, 2), "sigma=1", noise=SeededNoise(0), resolution="pixels")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"nn\.Module"):
        aimod.wrap(lambda x: x, "sigma=1", noise=SeededNoise(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="logits"):
        extract_logits(("not", "logits"))


def test_replace_logits_does_not_modify_the_original() -> None:
    original = {"logits": torch.zeros(1, 2)}
    new = replace_logits(original, torch.ones(1, 2))
    assert torch.equal(original["logits"], torch.zeros(1, 2))
    assert torch.equal(new["logits"], torch.ones(1, 2))


def test_tuple_outputs_and_keyword_inputs_key_on_the_model_input() -> None:
    class TupleModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            return self.lin(x), x.sum(1)

    wrapped = aimod.wrap(TupleModel(), "sigma=2", noise=KeyedNoise(SECRET))
    x1, x2, mask = torch.randn(2, 4), torch.randn(2, 4), torch.ones(2, 4)
    out = wrapped(mask=mask, x=x1)
    assert isinstance(out, tuple)
    assert torch.equal(out[1], x1.sum(1))
    assert not torch.equal(out[0] - wrapped.model(x1)[0], wrapped(mask=mask, x=x2)[0] - wrapped.model(x2)[0])
    assert torch.equal(out[0], wrapped(x=x1, mask=mask)[0])  # keyword order does not matter


def test_train_mode_never_reaches_the_frozen_model() -> None:
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    wrapped = aimod.wrap(net, "sigma=1", noise=SeededNoise(0))
    wrapped.train()
    assert not net.training
    before = net[1].running_mean.clone()
    wrapped(torch.randn(8, 4) + 5)
    assert torch.equal(net[1].running_mean, before)


def test_modulations_and_models_survive_pickling() -> None:
    import copy
    import pickle

    m = Modulation(sigma=1.0, focus={"a": 2.0, 3: -1.0})
    assert pickle.loads(pickle.dumps(m)) == m
    wrapped = aimod.wrap(nn.Linear(5, 3), [Modulation(sigma=1.0), "sigma=2"], noise=SeededNoise(0))
    assert copy.deepcopy(wrapped).modulation == [Modulation(sigma=1.0), Modulation(sigma=2.0)]


def test_a_secret_passed_as_noise_is_never_echoed() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        aimod.modulate_logits(torch.zeros(1, 3), Modulation(sigma=1.0), noise="owner-secret-abc123")  # type: ignore[arg-type]
    assert "owner-secret" not in str(info.value)
    assert "owner-secret" not in repr(info.value.value)
