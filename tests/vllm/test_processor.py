"""The processor against vLLM's own batch-update types, step by step, without an engine."""

from __future__ import annotations

import logging
import types

import pytest
import torch
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from aimod import KeyedNoise, Modulation
from aimod.text.processor import AimLogitsProcessor, prefix_keys
from aimod.vllm import AimodLogitsProcessor, extra_args
from vllm import SamplingParams

SECRET = "processor-test-secret-0123456789"
VOCAB = 64


def config(logprobs_mode: str = "processed_logprobs") -> types.SimpleNamespace:
    return types.SimpleNamespace(
        scheduler_config=types.SimpleNamespace(max_num_seqs=8),
        model_config=types.SimpleNamespace(get_vocab_size=lambda: VOCAB, logprobs_mode=logprobs_mode),
    )


@pytest.fixture
def processor(monkeypatch: pytest.MonkeyPatch) -> AimodLogitsProcessor:
    monkeypatch.setenv("AIMOD_SECRET", SECRET)
    monkeypatch.delenv("AIMOD_SECRET_FILE", raising=False)
    return AimodLogitsProcessor(config(), torch.device("cpu"), False)


def hf_scores(modulation: Modulation, ids: list[int], scores: torch.Tensor) -> torch.Tensor:
    """What the Hugging Face processor gives this prefix."""
    return AimLogitsProcessor(modulation, noise=KeyedNoise(SECRET))(torch.tensor([ids]), scores[None])[0]


def test_keys_and_noise_follow_the_batch_through_adds_moves_swaps_and_removals(
    processor: AimodLogitsProcessor,
) -> None:
    gen = torch.Generator().manual_seed(0)
    mods = [Modulation(sigma=1.0), None, Modulation(sigma=0.5, focus={4: 3.0}), Modulation(sigma=2.0)]
    params = [SamplingParams(extra_args=extra_args(m)) if m else SamplingParams() for m in mods]
    prompts = [[5, 6, 7], [9, 1], [3, 3, 3, 3], [8]]
    outputs: list[list[int]] = [[], [], [], []]
    # batch index -> request; request 3 joins at step 2, request 1 leaves at step 4
    batch = [0, 1, 2]
    processor.update_state(BatchUpdate(3, [], [(i, params[i], prompts[i], outputs[i]) for i in batch], []))
    checked = 0
    for step in range(8):
        if step == 2:
            batch.append(3)
            processor.update_state(BatchUpdate(4, [], [(3, params[3], prompts[3], outputs[3])], []))
        elif step == 3:  # rows 0 and 2 swap
            batch[0], batch[2] = batch[2], batch[0]
            processor.update_state(BatchUpdate(4, [], [], [(0, 2, MoveDirectionality.SWAP)]))
        elif step == 4:  # request 1 (row 1) finishes; the last row moves into its place
            batch = [batch[0], batch[3], batch[2]]
            processor.update_state(BatchUpdate(3, [1], [], [(3, 1, MoveDirectionality.UNIDIRECTIONAL)]))
        else:
            processor.update_state(None)
        logits = torch.randn(len(batch), VOCAB, generator=gen)
        clean = logits.clone()
        out = processor.apply(logits)
        for row, request in enumerate(batch):
            prefix = prompts[request] + outputs[request]
            if mods[request] is None:
                assert torch.equal(out[row], clean[row])  # bit for bit
                continue
            key = processor.keys(torch.tensor([row]))
            assert torch.equal(key, prefix_keys(torch.tensor([prefix]))[:, -1])  # the whole-prefix digest
            assert torch.equal(out[row], hf_scores(mods[request], prefix, clean[row]))
            checked += 1
        for request in batch:  # the engine appends each sampled token to the request's own list
            outputs[request].append(int(torch.randint(VOCAB, (1,), generator=gen)))
    assert checked == 22  # every modulated row at every step


def test_a_request_resumed_with_outputs_is_keyed_on_its_whole_prefix(processor: AimodLogitsProcessor) -> None:
    modulation = Modulation(sigma=1.0)
    prompt, output = [1, 2, 3], [4, 5]  # preempted after two tokens, then scheduled again
    processor.update_state(
        BatchUpdate(1, [], [(0, SamplingParams(extra_args=extra_args(modulation)), prompt, output)], [])
    )
    assert torch.equal(processor.keys(torch.tensor([0])), prefix_keys(torch.tensor([prompt + output]))[:, -1])
    output.append(6)
    processor.update_state(None)
    assert torch.equal(processor.keys(torch.tensor([0])), prefix_keys(torch.tensor([[1, 2, 3, 4, 5, 6]]))[:, -1])


def test_a_batch_without_aimod_rows_is_returned_as_it_is(processor: AimodLogitsProcessor) -> None:
    processor.update_state(BatchUpdate(2, [], [(0, SamplingParams(), [1], []), (1, SamplingParams(), [2], [])], []))
    logits = torch.randn(2, VOCAB)
    assert processor.apply(logits) is logits


def test_masked_tokens_stay_masked(processor: AimodLogitsProcessor) -> None:
    processor.update_state(BatchUpdate(1, [], [(0, SamplingParams(extra_args={"aimod_sigma": 3.0}), [1], [])], []))
    logits = torch.zeros(1, VOCAB)
    logits[0, 10:] = -torch.inf  # e.g. allowed_token_ids, applied before custom processors
    out = processor.apply(logits)
    assert bool(torch.isinf(out[0, 10:]).all())
    assert int(out[0].argmax()) < 10


def test_no_secret_refuses_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIMOD_SECRET", raising=False)
    monkeypatch.delenv("AIMOD_SECRET_FILE", raising=False)
    with pytest.raises(ValueError, match=r"needs the noise secret .*AIMOD_SECRET"):
        AimodLogitsProcessor(config(), torch.device("cpu"), False)


def test_the_secret_file_wins_and_is_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path, caplog) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET + "\nignored second line\n")
    monkeypatch.setenv("AIMOD_SECRET", "another-secret-of-enough-length")
    monkeypatch.setenv("AIMOD_SECRET_FILE", str(secret))
    with caplog.at_level(logging.WARNING, logger="aimod.vllm"):
        processor = AimodLogitsProcessor(config("raw_logprobs"), torch.device("cpu"), False)
    assert "raw logprobs" in caplog.text  # the engine would hand tenants clean logprobs: said plainly
    assert SECRET not in caplog.text
    assert SECRET not in repr(processor.__dict__)
    modulation = Modulation(sigma=1.0)
    processor.update_state(BatchUpdate(1, [], [(0, SamplingParams(extra_args=extra_args(modulation)), [7], [])], []))
    scores = torch.randn(1, VOCAB)
    assert torch.equal(processor.apply(scores.clone())[0], hf_scores(modulation, [7], scores[0]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"aimod_sigma": "1"}, "must be a number"),
        ({"aimod_sigma": -1.0}, "sigma"),
        ({"aimod_sigma": 1.0, "aimod_focus_ids": [1]}, "one std per id"),
        ({"aimod_sgima": 1.0}, "unknown extra_args"),
    ],
)
def test_malformed_arguments_are_refused_at_admission(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AimodLogitsProcessor.validate_params(SamplingParams(extra_args=args))


def test_greedy_rows_without_logprobs_take_the_pruned_path_and_pick_the_full_paths_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIMOD_SECRET", SECRET)
    monkeypatch.delenv("AIMOD_SECRET_FILE", raising=False)
    pruned = AimodLogitsProcessor(config(), torch.device("cpu"), False)
    full = AimodLogitsProcessor(config(), torch.device("cpu"), False, prune=False)
    mods = [Modulation(sigma=1.0), Modulation(sigma=1.0), Modulation(sigma=2.5, focus={4: 3.0, 9: -2.0}), None]
    kinds = [
        {"temperature": 0.0},
        {"temperature": 0.0, "logprobs": 2},  # logprobs: the full path
        {"temperature": 0.0},
        {"temperature": 0.0},
    ]
    params = [
        SamplingParams(**kind, extra_args=extra_args(m)) if m else SamplingParams(**kind)
        for m, kind in zip(mods, kinds, strict=True)
    ]
    prompts = [[5, 6, 7], [5, 6, 7], [3, 3], [8]]
    outputs: list[list[int]] = [[], [], [], []]
    gen = torch.Generator().manual_seed(2)
    added = [(i, params[i], prompts[i], outputs[i]) for i in range(4)]
    for processor in (pruned, full):
        processor.update_state(BatchUpdate(4, [], added, []))
    vocab = 5000
    for step in range(12):
        if step:
            for processor in (pruned, full):
                processor.update_state(None)
        logits = torch.randn(4, vocab, generator=gen) * 6
        if step % 3 == 0:
            logits[:, 2000:] = -torch.inf  # masked tokens
        if step % 4 == 1:
            logits[:, [10, 20]] = logits.amax(-1, keepdim=True)  # exact ties in the clean logits
        fast, slow = pruned.apply(logits.clone()), full.apply(logits.clone())
        assert torch.equal(fast.argmax(-1), slow.argmax(-1)), step
        assert bool(torch.isinf(fast[0]).sum() > vocab // 2)  # a greedy row: only the candidates kept
        assert torch.equal(fast[1], slow[1])  # the logprobs row: the full path, bit for bit
        assert torch.equal(fast[3], logits[3])  # an unmodulated row: untouched
        kept = ~torch.isinf(fast[0])
        assert torch.equal(fast[0][kept], slow[0][kept])
        for request in range(4):
            outputs[request].append(int(slow[request].argmax()))


def test_the_field_of_aimod_serve_prunes_greedy_rows_and_equals_the_hf_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from aimod import FieldNoise
    from aimod.vllm import noise_spec

    field = FieldNoise.for_text(SECRET)
    monkeypatch.setenv("AIMOD_SECRET", SECRET)
    monkeypatch.setenv("AIMOD_NOISE", noise_spec(field))
    processor = AimodLogitsProcessor(config(), torch.device("cpu"), False)
    modulation = Modulation(sigma=1.0)
    greedy = SamplingParams(temperature=0.0, extra_args=extra_args(modulation))
    sampled = SamplingParams(temperature=0.0, logprobs=1, extra_args=extra_args(modulation))
    processor.update_state(BatchUpdate(2, [], [(0, greedy, [3, 1, 4], []), (1, sampled, [3, 1, 4], [])], []))
    scores = torch.randn(1, VOCAB, generator=torch.Generator().manual_seed(4)) * 8
    out = processor.apply(scores.expand(2, VOCAB).clone())
    hf = AimLogitsProcessor(modulation, noise=field)(torch.tensor([[3, 1, 4]]), scores)
    assert torch.equal(out[1:], hf)  # the logprobs row: the full path, every token
    assert int(out[0].argmax()) == int(hf.argmax())  # the greedy row: pruned, the same token
    kept = torch.isfinite(out[0])
    assert 0 < int(kept.sum()) < VOCAB
    torch.testing.assert_close(out[0][kept], hf[0][kept], rtol=1e-6, atol=0)
