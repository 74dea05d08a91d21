"""The real server on loopback with the real SmolLM2-135M, called with the real openai client."""

from __future__ import annotations

import concurrent.futures

import openai
import pytest

from aimod import FieldNoise, Modulation
from aimod.catalog import Model, load
from aimod.server import build, create_app
from aimod.text import generate
from tests.server._serve import KEYS, SECRET, config, running

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
QUESTIONS = [
    "What is the capital of France?",
    "What is the chemical symbol of iron?",
    "What is the opposite of hot?",
    "What is the plural of mouse?",
]


@pytest.fixture(scope="module")
def smollm2() -> Model:
    return load(MODEL)


@pytest.fixture(scope="module")
def url(smollm2: Model) -> object:
    focus = {"allowed": ["Paris", "London", "cold"], "max_sigma": 6.0}
    served = build(config(MODEL, {"premium": 0.0, "free": 2.0}, focus=focus, batch_wait_ms=50), SECRET, loaded=smollm2)
    with running(create_app(served)) as base:
        yield base


def client(url: str, tier: str = "free") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[tier], max_retries=0)


def chat(c: openai.OpenAI, question: str, **kwargs: object) -> str:
    reply = c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], max_tokens=kwargs.pop("max_tokens", 10), **kwargs
    )
    return reply.choices[0].message.content or ""


def test_tiers_apply_exactly_the_library_modulation(url: str, smollm2: Model) -> None:
    model, tokenizer = smollm2.model, smollm2.tokenizer
    for tier, sigma in (("premium", 0.0), ("free", 2.0)):
        with client(url, tier) as c:
            served = [chat(c, q) for q in QUESTIONS[:2]]
        local = generate(
            model,
            tokenizer,
            QUESTIONS[:2],
            Modulation(sigma=sigma),
            noise=FieldNoise.for_text(SECRET),
            max_new_tokens=10,
        )
        assert served == local, tier


def test_streaming_gives_the_same_text_and_usage(url: str) -> None:
    with client(url) as c:
        whole = c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": QUESTIONS[0]}], max_tokens=12
        )
        stream = c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": QUESTIONS[0]}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    pieces = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    assert len([p for p in pieces if p]) > 1  # really streamed, piece by piece
    assert "".join(pieces) == whole.choices[0].message.content
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_stream_and_stop(url: str) -> None:
    with client(url, "premium") as c:
        whole = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12)
        stopped = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12, stop=["answer"])
        streamed = c.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=12, stream=True)
        pieces = [ch.choices[0].text for ch in streamed]
    assert "".join(pieces) == whole.choices[0].text
    assert "answer" in whole.choices[0].text
    assert stopped.choices[0].text == whole.choices[0].text.split("answer")[0]
    assert stopped.choices[0].finish_reason == "stop"


def test_concurrent_requests_share_a_batch_and_answer_as_alone(url: str) -> None:
    with client(url) as c:
        alone = [chat(c, q) for q in QUESTIONS]
        with concurrent.futures.ThreadPoolExecutor(len(QUESTIONS)) as pool:
            together = list(pool.map(lambda q: chat(c, q), QUESTIONS))
    assert together == alone
    import httpx

    assert httpx.get(f"{url}/healthz").json()["largest_batch"] > 1


def test_focus_is_an_extra_body_field(url: str) -> None:
    question = "Name one big European city."
    with client(url, "premium") as c:
        plain = chat(c, question, max_tokens=6)
        focused = chat(c, question, max_tokens=6, extra_body={"focus": {"London": 6.0}})
        away = chat(c, "What is the capital of France?", max_tokens=6, extra_body={"focus": {"Paris": -6.0}})
    assert "London" in focused
    assert focused != plain
    assert "Paris" not in away


def test_models_lists_the_model_with_the_callers_tier(url: str) -> None:
    with client(url) as c:
        models = c.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra["aimod"]["tier"] == "free"


BAD = [
    ("sigma", {"extra_body": {"sigma": 0.0}}, openai.PermissionDeniedError, "tier_not_allowed"),
    ("another tier", {"extra_body": {"tier": "premium"}}, openai.PermissionDeniedError, "tier_not_allowed"),
    ("seed", {"seed": 7}, openai.PermissionDeniedError, "tier_not_allowed"),
    (
        "word outside the policy",
        {"extra_body": {"focus": {"Rome": 1.0}}},
        openai.PermissionDeniedError,
        "focus_not_allowed",
    ),
    (
        "focus over the policy",
        {"extra_body": {"focus": {"Paris": 7.0}}},
        openai.PermissionDeniedError,
        "focus_not_allowed",
    ),
    ("empty focus word", {"extra_body": {"focus": {" ": 1.0}}}, openai.BadRequestError, None),
    (
        "one word twice",
        {"extra_body": {"focus": {"London": 1.0, "london": 2.0}}},
        openai.BadRequestError,
        "invalid_focus",
    ),
    ("unknown field", {"extra_body": {"colour": "red"}}, openai.BadRequestError, "invalid_field"),
    ("two choices", {"n": 2}, openai.BadRequestError, "invalid_field"),
    ("logit_bias", {"logit_bias": {"42": 5}}, openai.BadRequestError, None),
    ("too many tokens", {"max_tokens": 100_000}, openai.BadRequestError, None),
    ("wrong type", {"max_tokens": "many"}, openai.BadRequestError, "invalid_field"),
    ("another model", {"model": "gpt-4o"}, openai.NotFoundError, "model_not_found"),
    ("empty prompt", {"messages": [{"role": "user", "content": "   "}]}, openai.BadRequestError, "empty_prompt"),
    ("no messages", {"messages": []}, openai.BadRequestError, "invalid_field"),
    ("bad role", {"messages": [{"role": "robot", "content": "hi"}]}, openai.BadRequestError, "invalid_field"),
    (
        "prompt over the context",
        {"messages": [{"role": "user", "content": "word " * 9000}]},
        openai.BadRequestError,
        "context_length_exceeded",
    ),
]


@pytest.mark.parametrize(("what", "kwargs", "error", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_refused_and_the_server_keeps_serving(
    url: str, what: str, kwargs: dict, error: type[openai.APIStatusError], code: str | None
) -> None:
    arguments = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **kwargs}
    with client(url) as c:
        with pytest.raises(error) as raised:
            c.chat.completions.create(**arguments)
        assert raised.value.body["message"]
        assert raised.value.body["code"] == code
        assert chat(c, "hi", max_tokens=2)  # still serving


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (None, openai.AuthenticationError),
        ("unknown-key-0123456789", openai.AuthenticationError),
        ("short", openai.AuthenticationError),
        (KEYS["revoked"], openai.PermissionDeniedError),
    ],
)
def test_missing_malformed_unknown_and_revoked_keys(url: str, key: str | None, error: type[Exception]) -> None:
    import httpx

    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    response = httpx.post(f"{url}/v1/completions", headers=headers, json={"model": MODEL, "prompt": "hi"})
    assert response.status_code == (403 if error is openai.PermissionDeniedError else 401)
    if key is not None:
        with pytest.raises(error), openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as c:
            c.completions.create(model=MODEL, prompt="hi", max_tokens=2)
