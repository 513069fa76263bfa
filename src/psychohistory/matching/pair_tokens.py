"""A decoder verifier's inputs with each distinct text tokenised once.

The decoder verifier reads each pair as one string (``DECODER_TEMPLATE``). In a GRPO step
each text meets several others (a node its candidate outcomes, an outcome every node), and
tokenising every pair's whole string cost half as much as the verifier's forward passes on
an H200 (``benchmarks/results/gpu_profile_step.md``). A byte-level BPE tokenizer splits the
string into words before it merges, and the template's pieces meet the texts at a space and a
line break, so a text's ids do not depend on its neighbours: the pair's ids are its pieces'
ids joined. That holds for texts without surrounding whitespace or line breaks, which is
checked per text (others take the whole-string path), and for the tokenizer itself, which is
checked once on probe pairs (a tokenizer that adds special tokens, or merges across the
pieces, falls back to the whole string for every pair).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

PROBES = [("Finland will become a NATO member", "Lehman Brothers files for Chapter 11"),
          ("The Fed's rate: 5.25%?", "\u00e9lection \u2014 \u201cMacron\u201d wins (66.1%)")]


def whole_string_ids(tokenizer: Any, template: str, pairs: Sequence[tuple[str, str]]
                     ) -> list[list[int]]:
    """Each pair's template string tokenised whole, untruncated (the reference)."""
    texts = [template.format(left=a, right=b) for a, b in pairs]
    return list(tokenizer(texts)["input_ids"]) if texts else []


def joinable(text: str) -> bool:
    """Whether a text's ids can be joined with its neighbours' unchanged."""
    return (bool(text) and text == text.strip() and "\n" not in text and "\r" not in text
            and not unicodedata.combining(text[0]))


class PairTokens:
    """Token ids of (left, right) pairs in ``template``, each text tokenised once (cached)."""

    def __init__(self, tokenizer: Any, template: str, *, cache_size: int = 200_000) -> None:
        prefix, rest = template.split("{left}")
        middle, suffix = rest.split("{right}")
        self.tokenizer = tokenizer
        self.template = template
        self.cache_size = int(cache_size)
        self._ids: dict[str, list[int]] = {}
        # each text takes the space before it, as the word it begins does in the whole string
        self.joins = prefix.endswith(" ") and middle.endswith(" ")
        if self.joins:
            self.pieces = [self._tokenise([p])[0] for p in (prefix[:-1], middle[:-1], suffix)]
            self.joins = self.ids(PROBES) == whole_string_ids(tokenizer, template, PROBES)

    def _tokenise(self, texts: list[str]) -> list[list[int]]:
        return list(self.tokenizer(texts, add_special_tokens=False)["input_ids"])

    def _text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._ids))
        if missing:
            if len(self._ids) + len(missing) > self.cache_size:
                self._ids.clear()
            self._ids.update(zip(missing, self._tokenise([" " + t for t in missing]),
                                 strict=True))
        return [self._ids[t] for t in texts]

    def ids(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Each pair's ids, equal to its whole string's (``whole_string_ids``)."""
        if not self.joins:
            return whole_string_ids(self.tokenizer, self.template, pairs)
        out: list[list[int] | None] = [None] * len(pairs)
        easy = [i for i, (a, b) in enumerate(pairs) if joinable(a) and joinable(b)]
        if easy:
            texts = self._text_ids([t for i in easy for t in pairs[i]])
            head, mid, tail = self.pieces
            for k, i in enumerate(easy):
                out[i] = head + texts[2 * k] + mid + texts[2 * k + 1] + tail
        hard = [i for i in range(len(pairs)) if out[i] is None]
        for i, ids in zip(hard, whole_string_ids(self.tokenizer, self.template,
                                                 [pairs[i] for i in hard]), strict=True):
            out[i] = ids
        return out  # type: ignore[return-value]

    def batch(self, pairs: Sequence[tuple[str, str]], max_length: int) -> Any:
        """Tensors as the tokenizer gives them for the whole strings: the last ``max_length``
        ids of each (truncated on the left, keeping the question), padded on the right."""
        import torch
        from transformers import BatchEncoding

        rows = [ids[-max_length:] for ids in self.ids(pairs)]
        width = max((len(r) for r in rows), default=0)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, row in enumerate(rows):
            input_ids[k, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[k, : len(row)] = 1
        return BatchEncoding({"input_ids": input_ids, "attention_mask": mask})
