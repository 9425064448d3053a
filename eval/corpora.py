"""Controlled-diversity corpora built from real, labelled intent datasets.

Each family is a list of corpora of the same size whose true diversity has a known order. Real
human-written texts are used throughout; only their selection (and, for contamination, light
near-duplicate edits) is controlled.

To keep the LLM bill small on a CPU, every family draws an intent's examples from the FRONT of
one fixed, seeded ordering of that intent's examples. Two corpora that need 10 and 40 examples of
the same intent then share the first 10, so the union of texts (what the cache pays for) grows
with the largest need per intent, not with the number of corpora.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    intent: str


@dataclass
class Corpus:
    family: str
    level: float  # the controlled variable, as set
    truth: float  # true diversity order: higher = more diverse
    rep: int
    rows: list[Row]
    note: str = ""


@dataclass
class Dataset:
    name: str
    pool: dict[str, list[Row]]  # intent -> seeded ordering of its examples (corpus side)
    heldout: list[Row]  # real reference, disjoint from the pool
    intents: list[str] = field(default_factory=list)


def load_dataset(path: Path, *, seed: int = 0, heldout_per_intent: int = 10, subset: str | None = None,
                 subset_field: str | None = None, name: str | None = None) -> Dataset:
    """Rows of a `../shared/data` file; out-of-scope examples dropped; a per-intent held-out split.

    `subset` keeps the rows whose `subset_field` (CLINC150 `domain`, HWU64 `scenario`, HINT3
    `dataset`) equals it: one fine-grained, single-domain dataset.
    """
    rows = []
    for line in path.open(encoding="utf-8"):
        r = json.loads(line)
        if r.get("intent") in (None, "oos"):
            continue
        if subset is not None and r.get(subset_field or "") != subset:
            continue
        rows.append((Row(str(r["id"]), r["text"], r["intent"]), r.get("split")))
    rng = random.Random(seed)
    by_intent: dict[str, list[tuple[Row, str | None]]] = {}
    for row, split in rows:
        by_intent.setdefault(row.intent, []).append((row, split))
    pool: dict[str, list[Row]] = {}
    heldout: list[Row] = []
    for intent in sorted(by_intent):
        items = by_intent[intent]
        rng.shuffle(items)
        test = [r for r, s in items if s == "test"]
        if test:  # CLINC150 and HINT3 ship a test split: use it as the held-out reference
            heldout += test[:heldout_per_intent]
            pool[intent] = [r for r, s in items if s != "test"]
        else:
            heldout += [r for r, _ in items[:heldout_per_intent]]
            pool[intent] = [r for r, _ in items[heldout_per_intent:]]
    pool = {i: rows for i, rows in pool.items() if rows}
    return Dataset(name or path.stem, pool, heldout, sorted(pool))


# Which field splits each shared file into single-domain datasets, and which of those are used: a
# within-domain dataset needs at least 5 intents for an intent-count family to have 4 levels.
SUBSET_FIELD = {"clinc150": "domain", "hwu64": "scenario", "hint3": "dataset"}
MIN_SUBSET_INTENTS = 5


def dataset_source(name: str) -> str:
    """The group a dataset is held out with: CLINC150 and its domains are one source, and so on.

    HINT3's three datasets are separate products from separate companies, so each is its own source.
    """
    base, _, subset = name.partition(":")
    return name if base == "hint3" else base


def load_datasets(data: Path, spec: str, *, seed: int = 0) -> list[Dataset]:
    """Datasets named by a comma-separated spec.

    `clinc150` is the whole file; `clinc150:banking` one domain; `clinc150:*` every domain (likewise
    `hwu64:*` every scenario with >= 5 intents, `hint3:*` the three HINT3 datasets); `within` is all
    of those single-domain datasets.
    """
    names: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "within":
            names += ["clinc150:*", "hwu64:*", "hint3:*"]
        else:
            names.append(part)
    out: list[Dataset] = []
    for name in names:
        base, _, subset = name.partition(":")
        path = data / f"{base}.jsonl"
        if not subset:
            if base == "hint3":
                raise ValueError("hint3 is three datasets: name hint3:curekart, hint3:powerplay11, "
                                 "hint3:sofmattress or hint3:*")
            out.append(load_dataset(path, seed=seed))
            continue
        field_name = SUBSET_FIELD[base]
        if subset == "*":
            counts: dict[str, set[str]] = {}
            for line in path.open(encoding="utf-8"):
                r = json.loads(line)
                if r.get("intent") not in (None, "oos"):
                    counts.setdefault(r[field_name], set()).add(r["intent"])
            subsets = sorted(s for s, intents in counts.items() if len(intents) >= MIN_SUBSET_INTENTS)
        else:
            subsets = [subset]
        for s in subsets:
            out.append(load_dataset(path, seed=seed, subset=s, subset_field=field_name, name=f"{base}:{s}"))
    return out


def fill(n: int, intents: Sequence[str], pool: dict[str, list[Row]],
         weights: Sequence[float] | None = None) -> dict[str, int]:
    """Counts summing to at most n, proportional to weights, never more than an intent's pool holds.

    Water-filling: what a small intent cannot supply is shared among the others in proportion to
    their weights, so small single-domain datasets still give corpora of the requested size.
    """
    weights = list(weights) if weights is not None else [1.0] * len(intents)
    caps = {i: len(pool[i]) for i in intents}
    counts = {i: 0 for i in intents}
    active = [i for i, w in zip(intents, weights, strict=True) if w > 0 and caps[i] > 0]
    wmap = dict(zip(intents, weights, strict=True))
    remaining = n
    while remaining > 0 and active:
        total = sum(wmap[i] for i in active)
        share = _spread(remaining, active, [wmap[i] / total for i in active])
        progressed = 0
        for i in active:
            add = min(share.get(i, 0), caps[i] - counts[i])
            counts[i] += add
            progressed += add
        remaining -= progressed
        active = [i for i in active if counts[i] < caps[i]]
        if progressed == 0:
            break
    return {i: c for i, c in counts.items() if c > 0}


def _take(ds: Dataset, counts: dict[str, int]) -> list[Row]:
    rows = []
    for intent, k in counts.items():
        available = ds.pool[intent]
        rows += available[: min(k, len(available))]
    return rows


def _spread(n: int, intents: Sequence[str], weights: Sequence[float] | None = None) -> dict[str, int]:
    """Integer counts summing to n, proportional to weights (largest remainder)."""
    weights = list(weights) if weights is not None else [1.0] * len(intents)
    total = sum(weights)
    raw = [n * w / total for w in weights]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return {intent: c for intent, c in zip(intents, counts, strict=True) if c > 0}


def intent_order(ds: Dataset, rep: int) -> list[str]:
    order = list(ds.intents)
    random.Random(1000 + rep).shuffle(order)
    return order


def count_levels(n_intents: int, ks: Sequence[int]) -> list[int]:
    """The distinct intent counts a dataset supports (0 = all), smallest first."""
    return sorted({n_intents if k == 0 else min(k, n_intents) for k in ks})


def intent_count_family(ds: Dataset, n: int, rep: int, ks: Sequence[int] = (2, 3, 5, 10, 25, 50, 0)) -> list[Corpus]:
    """n examples from k intents (k=0 means all): more intents, more diversity.

    The k intents are the first in the repetition's order that hold n/k examples each (so every
    level has n examples); a level no k intents can fill is left out rather than made smaller.
    """
    order = intent_order(ds, rep)
    out = []
    for k in count_levels(len(order), ks):
        need = -(-n // k)
        chosen = [i for i in order if len(ds.pool[i]) >= need][:k]
        if len(chosen) < k:
            chosen = sorted(order, key=lambda i: -len(ds.pool[i]))[:k]
        rows = _take(ds, fill(n, chosen, ds.pool))
        if len(rows) < n:
            continue
        out.append(Corpus("intent_count", k, k, rep, rows, f"{k} intents"))
    return out


def head_collapse_family(ds: Dataset, n: int, rep: int,
                         exponents: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)) -> list[Corpus]:
    """Zipf-like reweighting of all intents toward the head: the tail vanishes as s grows."""
    order = intent_order(ds, rep)
    out = []
    for s in exponents:
        weights = [1.0 / (r + 1) ** s for r in range(len(order))]
        rows = _take(ds, fill(n, order, ds.pool, weights))
        out.append(Corpus("head_collapse", s, -s, rep, rows, f"zipf exponent {s}"))
    return out


def recursive_family(ds: Dataset, n: int, rep: int, generations: int = 5, regime: str = "replace") -> list[Corpus]:
    """Generation g+1 is drawn (with replacement) from generation g: duplicates pile up, tails vanish.

    `replace` feeds only the previous generation; `accumulate` mixes it half and half with fresh
    real data, the regime known to prevent collapse (Gerstgrasser et al. 2024).
    """
    rng = random.Random(2000 + rep)
    order = intent_order(ds, rep)
    base = _take(ds, fill(n, order, ds.pool))
    # fresh real data for the accumulate regime: the next examples of each intent, beyond `base`
    per_intent = max(3, -(-n // len(order)))
    fresh_pool = [r for i in order for r in ds.pool[i][len([b for b in base if b.intent == i]):][:per_intent]]
    rng_fresh = random.Random(3000 + rep)
    gens = [base]
    for _ in range(generations):
        prev = gens[-1]
        if regime == "replace":
            nxt = [rng.choice(prev) for _ in range(n)]
        else:
            k_fresh = min(n - n // 2, len(fresh_pool))  # small datasets: as much fresh data as exists
            nxt = [rng.choice(prev) for _ in range(n - k_fresh)] + rng_fresh.sample(fresh_pool, k_fresh)
        gens.append(nxt)
    family = f"recursive_{regime}"
    return [Corpus(family, g, -g, rep, rows, f"generation {g}") for g, rows in enumerate(gens)]


_TOKEN = re.compile(r"\w+")


def _bigrams(text: str) -> list[tuple[str, str]]:
    t = _TOKEN.findall(text.lower())
    return list(zip(t, t[1:], strict=False))


def ngram_mislead_family(ds: Dataset, n: int, rep: int, ks: Sequence[int] = (3, 6, 12, 24, 48)) -> list[Corpus]:
    """More intents but ever more stereotyped wording: lexical metrics fall while true diversity rises.

    Within each intent, examples are ranked by how common their bigrams are across the dataset.
    Corpora with few intents take each intent's most idiosyncratic phrasings; corpora with many
    intents take the most formulaic ones. Truth is the number of intents.
    """
    order = intent_order(ds, rep)
    freq = Counter(b for rows in ds.pool.values() for r in rows for b in set(_bigrams(r.text)))

    def commonness(r: Row) -> float:
        bg = _bigrams(r.text)
        return sum(freq[b] for b in bg) / max(1, len(bg))

    levels = count_levels(len(order), ks)
    head = {i: ds.pool[i][:60] for i in order}
    out = []
    for idx, k in enumerate(levels):
        counts = fill(n, order[:k], head)
        frac = idx / max(1, len(levels) - 1)  # 0 = most idiosyncratic, 1 = most formulaic
        rows = []
        for intent, c in counts.items():
            ranked = sorted(head[intent], key=commonness, reverse=frac >= 0.5)
            rows += ranked[:c]
        if len(rows) < n:
            continue
        out.append(Corpus("ngram_mislead", k, k, rep, rows, f"{k} intents, {'formulaic' if frac >= .5 else 'varied'} wording"))
    return out


_EDITS = (
    lambda t: "hey, " + t,
    lambda t: t + " please",
    lambda t: "can you tell me " + t,
    lambda t: t.replace(" the ", " that ", 1) if " the " in t else t + " now",
    lambda t: "so " + t + " thanks",
)


def near_duplicate(text: str, k: int) -> str:
    return _EDITS[k % len(_EDITS)](text)


def contamination_family(ds: Dataset, n: int, rep: int,
                         shares: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8)) -> list[Corpus]:
    """Real data where a growing share is replaced by near-duplicates of the remaining examples."""
    order = intent_order(ds, rep)
    base = _take(ds, fill(n, order, ds.pool))
    random.Random(4000 + rep).shuffle(base)
    out = []
    for f in shares:
        keep = base[: n - int(round(f * n))]
        dups = [Row(f"{keep[j % len(keep)].id}~nd{j // len(keep)}", near_duplicate(keep[j % len(keep)].text, j // len(keep)),
                    keep[j % len(keep)].intent) for j in range(n - len(keep))]
        out.append(Corpus("contamination", f, -f, rep, keep + dups, f"{f:.0%} near-duplicates"))
    return out


FAMILIES = {
    "intent_count": intent_count_family,
    "head_collapse": head_collapse_family,
    "recursive_replace": lambda ds, n, rep: recursive_family(ds, n, rep, regime="replace"),
    "recursive_accumulate": lambda ds, n, rep: recursive_family(ds, n, rep, regime="accumulate"),
    "ngram_mislead": ngram_mislead_family,
    "contamination": contamination_family,
}


def build_all(ds: Dataset, *, n: int, reps: int, families: Sequence[str] | None = None) -> list[Corpus]:
    out = []
    for name in families or FAMILIES:
        for rep in range(reps):
            out += FAMILIES[name](ds, n, rep)
    return out
