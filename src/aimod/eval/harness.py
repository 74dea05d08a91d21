"""lm-evaluation-harness integration: the ``aimod`` model type and local tasks built from aimod's fact set.

``lm_eval --model aimod --model_args "pretrained=smollm2-135m,modulation=sigma=2;paris=+3;london=-2" --tasks ...``
evaluates a modulated model. :class:`AimodLM` is lm-eval's Hugging Face model (``HFLM``) with the same noise
applied to both request kinds:

* ``generate_until``: every decoding step through :class:`~aimod.text.AimLogitsProcessor`;
* ``loglikelihood`` (multiple choice, perplexity): every scored position through
  :func:`~aimod.text.modulate_sequence_logits`, keyed on its token prefix, so a choice's score sees the
  noise greedy generation would see at that position.

Model arguments (beside every ``hf`` argument such as ``batch_size`` or ``device``):

* ``pretrained``: a catalog name (:func:`aimod.load`): ``smollm2-135m`` (the default) or ``hf:<id or path>``;
  a bare hub id or local folder (lm-eval's own convention) works too;
* ``modulation``: the modulation's string form (:class:`~aimod.Modulation`), with ``;`` between items since
  lm-eval splits model arguments on commas (``sigma=2;paris=+3``; default: none); focus words are expanded to
  tokens by :func:`aimod.text.token_focus`, integer keys are token ids. The old ``sigma=`` and ``focus=``
  arguments are refused with the new form;
* ``secret_file``: a file holding the noise key; else ``$AIMOD_SECRET``; else a public key derived from
  ``seed`` (default 0), which suits evaluation and nothing else. A ``secret`` argument is refused: lm-eval
  logs its model arguments and writes them into its results.

lm-eval (0.4.x) has no plugin entry point for models, so aimod installs ``aimod-lm-eval.pth``: at interpreter
start it adds an import hook (no import of lm-eval or torch) that registers ``aimod`` right after
``lm_eval.models`` loads. ``python -m aimod.eval.harness`` runs the lm-eval CLI with the model registered, for
environments where ``.pth`` files are not processed.

:func:`write_tasks` writes ``aimod_facts_gen`` (generation, normalised exact match) and ``aimod_facts_mc``
(multiple choice, accuracy by log-likelihood) over :func:`aimod.data.facts.fact_items` into a folder for
``--include_path``; no hub data set is involved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from aimod.errors import InvalidArgumentError, MissingExtraError
from aimod.field import FieldNoise
from aimod.modulation import Modulation
from aimod.text.focus import token_focus
from aimod.text.processor import AimLogitsProcessor
from aimod.text.scoring import modulate_sequence_logits

try:
    from lm_eval.api.registry import register_model
    from lm_eval.models.huggingface import HFLM
except ImportError as error:  # pragma: no cover - exercised only without the eval extra
    raise MissingExtraError("lm-eval", "eval") from error

__all__ = ["AimodLM", "parse_modulation", "write_tasks"]


def parse_modulation(text: object) -> Modulation:
    """The ``modulation`` model argument: the string form with ``;`` (or ``,``) between items; None is none.

    Example:
        >>> str(parse_modulation("sigma=2;paris=+3; 1234=-1.5"))
        'sigma=2.0, paris=+3.0, 1234=-1.5'
    """
    if text is None:
        return Modulation()
    return Modulation.parse(str(text), separators=",;")


@register_model("aimod")
class AimodLM(HFLM):  # type: ignore[misc]
    """lm-eval's Hugging Face causal LM with aimod modulation on generation and on log-likelihoods."""

    def __init__(
        self,
        pretrained: Any = "smollm2-135m",
        modulation: Any = None,
        secret_file: str | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if "secret" in kwargs:
            raise InvalidArgumentError(
                "secret",
                "<hidden>",
                "absent from the model arguments (lm-eval logs them and writes them into its results)",
                "Set $AIMOD_SECRET or pass secret_file=<path> instead.",
            )
        for old in ("sigma", "focus"):
            if old in kwargs:
                raise InvalidArgumentError(
                    old,
                    kwargs[old],
                    "absent: the modulation is one argument in its string form",
                    "Write for example modulation=sigma=2;paris=+3;london=-2 (';' between items).",
                )
        modulated = parse_modulation(modulation)
        pretrained = _pretrained(pretrained)
        kwargs.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(pretrained=pretrained, **kwargs)
        self.modulation = token_focus(self.tokenizer, modulated)
        self.noise = FieldNoise.for_text(_secret(secret_file, seed))

    def _model_call(self, inps: torch.Tensor, attn_mask: Any = None, labels: Any = None) -> torch.Tensor:
        logits: torch.Tensor = super()._model_call(inps, attn_mask, labels)
        if self.modulation.is_identity:
            return logits
        if self.backend != "causal":
            raise InvalidArgumentError("backend", self.backend, "causal", "aimod modulates causal language models.")
        # lm-eval right-pads loglikelihood batches, so every position's prefix starts at token 0
        return modulate_sequence_logits(logits.float(), inps, self.modulation, noise=self.noise).to(logits.dtype)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **kwargs: Any) -> torch.Tensor:
        processors = list(kwargs.pop("logits_processor", None) or [])
        processors.append(
            AimLogitsProcessor(self.modulation, noise=self.noise, pad_token_id=self.tokenizer.pad_token_id)
        )
        tokens: torch.Tensor = super()._model_generate(context, max_length, stop, logits_processor=processors, **kwargs)
        return tokens


def _pretrained(pretrained: Any) -> Any:
    """What HFLM loads for a catalog name: the embedded folder, or the source of ``hf:``; else as given.

    Raises:
        InvalidArgumentError: For a catalog model that is not a causal language model.
    """
    from aimod.catalog import available, kind

    if not isinstance(pretrained, str) or not (pretrained in available() or pretrained.startswith("hf:")):
        return pretrained  # a model object, or a hub id / folder in lm-eval's own convention
    found = kind(pretrained)
    if found != "causal-lm":
        raise InvalidArgumentError(
            "pretrained", pretrained, "a causal language model", f"It is a {found} model; lm-eval evaluates text."
        )
    if pretrained == "smollm2-135m":
        from aimod.text.models import smollm2_folder

        return str(smollm2_folder())
    return pretrained[len("hf:") :]


def _secret(secret_file: str | None, seed: int) -> str:
    """The noise key: the file's content, else ``$AIMOD_SECRET``, else a public key from ``seed``."""
    if secret_file is not None:
        try:
            text = Path(str(secret_file)).read_text().strip()
        except OSError as error:
            raise InvalidArgumentError("secret_file", str(secret_file), "a readable file", str(error)) from None
        if not text:
            raise InvalidArgumentError("secret_file", str(secret_file), "a file holding a non-empty secret")
        return text
    return os.environ.get("AIMOD_SECRET") or f"aimod-lm-eval-public-seed-{int(seed)}"


_UTILS = '''"""Scoring for the aimod fact tasks (written by aimod.eval.harness.write_tasks)."""
from aimod.data.facts import normalise


def exact_match(doc, results):
    answer = normalise(results[0])
    return {"exact_match": float(answer in {normalise(a) for a in doc["aliases"]})}
'''


def write_tasks(folder: str | Path, *, limit: int | None = None) -> Path:
    r"""Writes the two lm-eval tasks over aimod's fact set (and their data) into ``folder``; returns it.

    The prompt is ``Question: <question>\nAnswer: <stem>``; generation stops at a line break (or 8 tokens)
    and is scored by :func:`aimod.data.facts.normalise` exact match; the multiple-choice task scores the
    four choices as continuations of the same prompt.
    """
    from aimod.data.facts import fact_items

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = fact_items()[:limit] if limit else fact_items()
    data = folder / "aimod_facts.jsonl"
    with data.open("w") as handle:
        for item in items:
            row = {
                "id": item.id,
                "category": item.category,
                "question": item.question,
                "stem": item.stem,
                "aliases": list(item.aliases),
                "choices": list(item.choices),
                "label": item.label,
            }
            handle.write(json.dumps(row) + "\n")
    common = (
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data.resolve()))}\n"
        "test_split: test\n"
        'doc_to_text: "Question: {{question}}\\nAnswer: {{stem}}"\n'
    )
    (folder / "aimod_facts_gen.yaml").write_text(
        "task: aimod_facts_gen\n"
        + common
        + "output_type: generate_until\n"
        + 'doc_to_target: "{{aliases[0]}}"\n'
        + "generation_kwargs:\n  until: ['\\n']\n  max_gen_toks: 8\n  do_sample: false\n"
        + "process_results: !function utils.exact_match\n"
        + "metric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n"
    )
    (folder / "aimod_facts_mc.yaml").write_text(
        "task: aimod_facts_mc\n"
        + common
        + "output_type: multiple_choice\n"
        + 'doc_to_choice: "{{choices}}"\n'
        + "doc_to_target: label\n"
        + "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    (folder / "utils.py").write_text(_UTILS)
    return folder


def main() -> None:
    """``python -m aimod.eval.harness [lm_eval arguments]``: the lm-eval CLI with ``aimod`` registered."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
