"""The real server on loopback with real vision models, called with httpx."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import logging

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aimod.catalog import load
from aimod.data.fashion_mnist import load_fashion_mnist
from aimod.server import build, create_app
from tests.server._serve import KEYS, SECRET, auth, b64, config, png, running

SIGMA = {"premium": 0.0, "free": 3.0}
FOCUS = {"allowed": ["Bag", "Sneaker"], "max_sigma": 4.0}


@pytest.fixture(scope="module")
def fashion() -> object:
    return load("resnet-fashion")


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    pixels, _ = load_fashion_mnist("test")
    return [png(pixels[i].numpy()) for i in range(24)]


@pytest.fixture(scope="module")
def url(fashion: object) -> object:
    served = build(config("resnet-fashion", SIGMA, focus=FOCUS, max_batch=8, batch_wait_ms=20), SECRET, loaded=fashion)
    with running(create_app(served)) as base:
        yield base


def classify(client: httpx.Client, image: bytes, tier: str = "free", **fields: object) -> httpx.Response:
    return client.post("/v1/classify", headers=auth(tier), json={"image": b64(image), **fields})


def test_premium_is_the_clean_model_and_free_is_modulated(url: str, fashion: object, images: list[bytes]) -> None:
    pixels, _ = load_fashion_mnist("test")
    clean = fashion.logits(fashion.preprocess(pixels[:24, None])).argmax(1).tolist()  # type: ignore[attr-defined]
    with httpx.Client(base_url=url) as client:
        premium = [classify(client, im, "premium").json()["labels"][0]["class_id"] for im in images]
        free = [classify(client, im, "free").json()["labels"][0]["class_id"] for im in images]
    assert premium == clean
    assert free != clean  # sigma 3 on a 10-class model changes some decisions


def test_same_query_same_answer_and_multipart_equals_json(url: str, images: list[bytes]) -> None:
    with httpx.Client(base_url=url) as client:
        first = classify(client, images[0], top_k=3).json()
        again = classify(client, images[0], top_k=3).json()
        upload = client.post(
            "/v1/classify",
            headers=auth("free"),
            files={"image": ("a.png", images[0], "image/png")},
            data={"top_k": "3"},
        ).json()
    assert first == again == upload
    assert first["tier"] == "free"
    assert len(first["labels"]) == 3
    assert all(set(label) == {"class_id", "label"} for label in first["labels"])  # release = "labels" at a noisy tier


@pytest.mark.parametrize(("release", "decimals"), [("labels", None), ("rounded", 2), ("probabilities", 6)])
def test_what_a_noisy_tier_gets_is_the_owners_release_setting(
    fashion: object, images: list[bytes], release: str, decimals: int | None
) -> None:
    served = build(config("resnet-fashion", SIGMA, max_batch=4, release=release), SECRET, loaded=fashion)
    with running(create_app(served)) as base, httpx.Client(base_url=base) as client:
        free = classify(client, images[1], "free", top_k=10).json()["labels"]
        premium = classify(client, images[1], "premium", top_k=10).json()["labels"]
    assert all(len(str(label["probability"]).split(".")[-1]) > 2 for label in premium[:1])  # clean: 6 decimals
    assert abs(sum(label["probability"] for label in premium) - 1) < 1e-4
    if decimals is None:
        assert all("probability" not in label for label in free)
    else:
        assert all(round(label["probability"], decimals) == label["probability"] for label in free)
        assert abs(sum(label["probability"] for label in free) - 1) < 10 * 10.0**-decimals


def test_concurrent_rows_are_batched_and_answer_as_alone(url: str, images: list[bytes]) -> None:
    with httpx.Client(base_url=url) as client:
        alone = [classify(client, im).json() for im in images]
        before = client.get("/healthz").json()
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            together = list(pool.map(lambda im: classify(client, im).json(), images))
        after = client.get("/healthz").json()
    assert together == alone
    assert after["largest_batch"] > 1  # some requests shared a forward pass
    assert after["rows"] - before["rows"] == len(images)


def test_focus_promotes_the_class_within_the_policy(url: str, images: list[bytes]) -> None:
    with httpx.Client(base_url=url) as client:
        base = [classify(client, im, "premium", top_k=10).json()["labels"] for im in images[:8]]
        focused = [classify(client, im, "premium", top_k=10, focus={"Bag": 4.0}).json()["labels"] for im in images[:8]]

    def bag(labels: list[dict]) -> float:
        return next(label["probability"] for label in labels if label["label"] == "Bag")

    assert all(bag(f) > bag(b) for f, b in zip(focused, base, strict=True))


def _tiny_gif() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD = [
    # (what, headers tier, json body or raw content, expected status, expected code)
    ("no key", None, {"image": "AAAA"}, 401, "missing_api_key"),
    ("malformed key", "Basic abc", {"image": "AAAA"}, 401, "invalid_api_key"),
    ("unknown key", "Bearer unknown-key-0123456789", {"image": "AAAA"}, 401, "invalid_api_key"),
    ("revoked key", "revoked", {"image": "AAAA"}, 403, "revoked_api_key"),
    ("sigma", "free", {"image": "AAAA", "sigma": 0}, 403, "tier_not_allowed"),
    ("another tier", "free", {"image": "AAAA", "tier": "premium"}, 403, "tier_not_allowed"),
    ("seed", "free", {"image": "AAAA", "seed": 1}, 403, "tier_not_allowed"),
    ("malformed json", "free", b'{"image": ', 400, "invalid_json"),
    ("not an object", "free", b"[1, 2]", 400, "invalid_json"),
    ("a 5000-digit number", "free", b'{"image": 1' + b"0" * 5000 + b"}", 400, "invalid_json"),
    ("deep nesting", "free", b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_json"),
    ("wrong type", "free", {"image": 42}, 400, "invalid_field"),
    ("unknown field", "free", {"image": "AAAA", "colour": "red"}, 400, "invalid_field"),
    ("missing image", "free", {"top_k": 3}, 400, "invalid_field"),
    ("bad base64", "free", {"image": "not base64!"}, 400, "bad_base64"),
    ("non-image bytes", "free", {"image": b64(b"%PDF-1.4 definitely not an image")}, 400, "bad_image"),
    ("unknown class", "free", {"image": "AAAA", "focus": {"Bagg": 1.0}}, 400, "unknown_class"),
    ("class outside policy", "free", {"image": "AAAA", "focus": {"Shirt": 1.0}}, 403, "focus_not_allowed"),
    ("focus over the policy", "free", {"image": "AAAA", "focus": {"Bag": 4.5}}, 403, "focus_not_allowed"),
    ("focus not a number", "free", {"image": "AAAA", "focus": {"Bag": "lots"}}, 400, "invalid_field"),
    ("top_k over the limit", "free", {"image": "AAAA", "top_k": 500}, 400, None),
    ("model of another server", "free", {"image": "AAAA", "model": "gpt-4"}, 404, "model_not_found"),
]


@pytest.mark.parametrize(("what", "who", "body", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving(
    url: str, images: list[bytes], what: str, who: str | None, body: object, status: int, code: str | None
) -> None:
    headers = auth(who) if who in KEYS else ({"Authorization": who} if who else {})
    if who in ("free", "revoked") and isinstance(body, dict) and body.get("image") == "AAAA":
        body = {**body, "image": b64(images[0])}
    with httpx.Client(base_url=url) as client:
        if isinstance(body, bytes):
            response = client.post(
                "/v1/classify", headers={**headers, "Content-Type": "application/json"}, content=body
            )
        else:
            response = client.post("/v1/classify", headers=headers, json=body)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["message"]
        assert error["code"] == code
        assert classify(client, images[1]).status_code == 200  # everyone else is still served


def test_images_over_the_limits_get_413(fashion: object, images: list[bytes]) -> None:
    served = build(
        config("resnet-fashion", SIGMA, max_image_bytes=2048, max_image_pixels=10_000), SECRET, loaded=fashion
    )
    big = png((np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8))
    with running(create_app(served)) as base, httpx.Client(base_url=base) as client:
        too_many_bytes = classify(client, big)
        assert too_many_bytes.status_code == 413
        assert too_many_bytes.json()["error"]["code"] == "image_too_large"
        pixels = client.post(
            "/v1/classify", headers=auth("free"), files={"image": ("b.png", _small_but_wide(), "image/png")}
        )
        assert pixels.status_code == 413
        assert "pixels" in pixels.json()["error"]["message"]
        assert classify(client, images[0]).status_code == 200


def test_noise_fields_in_forms_and_queries_get_403(url: str, images: list[bytes]) -> None:
    with httpx.Client(base_url=url) as client:
        form = client.post(
            "/v1/classify", headers=auth("free"), files={"image": ("a.png", images[0])}, data={"sigma": "0"}
        )
        query = client.post("/v1/classify?sigma=0", headers=auth("free"), json={"image": b64(images[0])})
        odd_digit = client.post(
            "/v1/classify", headers=auth("free"), files={"image": ("a.png", images[0])}, data={"top_k": "\u00b2"}
        )
    assert form.status_code == 403
    assert query.status_code == 403
    assert form.json()["error"]["code"] == query.json()["error"]["code"] == "tier_not_allowed"
    assert odd_digit.status_code == 400


def _small_but_wide() -> bytes:
    return png(np.zeros((1, 20_000), dtype=np.uint8))  # compresses to a few hundred bytes


def test_logs_name_tenants_never_keys_or_secrets(
    url: str, images: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aimod.server"), httpx.Client(base_url=url) as client:
        classify(client, images[0])
        client.post("/v1/classify", headers={"Authorization": "Bearer wrong-key-0123456789"}, json={"image": "x"})
    logged = "\n".join(str(getattr(r, "fields", "")) + r.getMessage() for r in caplog.records)
    assert "'tenant': 'bob'" in logged
    for secret in (*KEYS.values(), SECRET, "wrong-key-0123456789"):
        assert secret not in logged


def test_openapi_documents_every_route_and_body(url: str) -> None:
    with httpx.Client(base_url=url) as client:
        spec = client.get("/openapi.json").json()
    for route in ("/v1/classify", "/v1/segment", "/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz"):
        assert route in spec["paths"]
    body = spec["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "focus" in spec["components"]["schemas"]["ChatRequest"]["properties"]


@pytest.mark.slow
def test_segment_returns_the_mask_as_png_and_class_shares() -> None:
    from PIL import Image

    from aimod.data.scenes import make_scenes

    segformer = load("segformer-scenes")
    scenes, _ = make_scenes(3, split="test")
    served = build(config("segformer-scenes", {"premium": 0.0, "free": 4.0}), SECRET, loaded=segformer)
    with running(create_app(served)) as base, httpx.Client(base_url=base) as client:
        for scene in scenes:
            image = png((scene.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            answers = {
                tier: client.post("/v1/segment", headers=auth(tier), json={"image": b64(image)}).json()
                for tier in ("premium", "free")
            }
            upload = client.post("/v1/segment", headers=auth("free"), files={"image": ("s.png", image, "image/png")})
            assert upload.json() == answers["free"]
            masks = {t: np.asarray(Image.open(io.BytesIO(base64.b64decode(a["mask_png"])))) for t, a in answers.items()}
            pixels = torch.from_numpy(np.array(Image.open(io.BytesIO(image)))).permute(2, 0, 1)[None]
            x = segformer.preprocess(pixels)
            logits = F.interpolate(segformer.logits(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
            decided = logits.argmax(1, keepdim=True).float()
            clean = F.interpolate(decided, size=pixels.shape[-2:], mode="nearest")[0, 0].to(torch.uint8)
            assert np.array_equal(masks["premium"], clean.numpy())  # fixed-shape batches: same bits as alone
            assert masks["free"].shape == clean.shape
            assert not np.array_equal(masks["free"], masks["premium"])
            shares = answers["free"]["shares"]
            counts = np.bincount(masks["free"].reshape(-1), minlength=len(shares))
            assert list(shares.values()) == pytest.approx(counts / counts.sum(), abs=1e-6)
