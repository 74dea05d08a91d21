"""Runs the real vLLM engine with aimod's processor on a list of cases; writes the results as JSON.

Used by the tests (one engine start per run, in its own process: vLLM's engine core is a spawned process and
its imports warn in ways the test suite turns into errors). Cases are token-id prompts with optional aimod
``extra_args``; each run generates them all in one mixed batch, and again one at a time.

Run: python tests/vllm/run_engine.py CASES.json OUT.json    (needs $AIMOD_SECRET; offline)
"""

from __future__ import annotations

import json
import sys
import time


def main(cases_path: str, out_path: str) -> None:
    from aimod.text.models import smollm2_folder
    from aimod.vllm import AimodLogitsProcessor
    from vllm import LLM, SamplingParams, TokensPrompt

    with open(cases_path) as file:
        spec = json.load(file)
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

    def params(case: dict) -> SamplingParams:
        return SamplingParams(
            temperature=0.0,
            max_tokens=case["max_tokens"],
            logprobs=case.get("logprobs"),
            extra_args=case.get("extra_args"),
        )

    def run(cases: list[dict]) -> list[dict]:
        prompts = [TokensPrompt(prompt_token_ids=case["ids"]) for case in cases]
        outputs = llm.generate(prompts, [params(case) for case in cases], use_tqdm=False)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            chosen = None
            if completion.logprobs is not None:
                chosen = [
                    step[token].logprob for step, token in zip(completion.logprobs, completion.token_ids, strict=True)
                ]
            results.append({"tokens": list(completion.token_ids), "logprobs": chosen})
        return results

    batch = run(spec["cases"])
    alone = [run([case])[0] for case in spec["cases"]] if spec.get("alone", True) else []
    with open(out_path, "w") as file:
        json.dump({"batch": batch, "alone": alone, "load_s": loaded}, file)
    llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
