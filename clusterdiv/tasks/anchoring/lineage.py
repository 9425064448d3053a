"""Recursion guard: flag synthetic examples seeded from earlier synthetic batches, not from real data.

Training on data generated from generated data compounds the generator's biases round after
round (model collapse). The guard looks for that, cheapest evidence first:

1. **exact duplicate**: the same normalised text (NFKC, lower-case, punctuation dropped,
   whitespace collapsed) occurs in an earlier synthetic batch;
2. **near duplicate**: character 5-shingle Jaccard >= `near_dup_jaccard` (default 0.8) to an
   earlier synthetic example, and higher than to any real example. Exact Jaccard, computed as a
   sparse product in chunks: no MinHash approximation, so no dependency and no false misses;
3. **paraphrase**, any of three calibrated tests, each also requiring the example to be closer to
   the earlier batches than to any real example (a rewrite of real data is anchored in it):
   a. embedding cosine to the nearest earlier synthetic example >= a threshold: with >= 20 real
      examples the `real_percentile` (default 97th) percentile of each real example's cosine to
      its nearest *other* real example (clipped to [0.8, 0.98]), otherwise the fixed default 0.9;
   b. cosine + 5-shingle Jaccard to the nearest earlier synthetic example >= the same percentile
      of that evidence for independent real examples against the same earlier batches;
   c. the margin: cosine + Jaccard + word containment to the earlier batches minus the same to the
      nearest real example, >= the same percentile of that margin for independent real examples
      (against their nearest *other* real example).
   Test (a) alone missed half the light paraphrases (a word dropped, a greeting added) inside one
   domain, where real utterances are near-duplicates of each other and its cut rises to 0.95-0.97;
   (b) asks "closer to these earlier batches than real data comes" and (c) "closer to them than to
   real data by more than real data is to itself". The three were chosen, with the 97th percentile,
   on the CLINC150 domains and hold recall 0.9 at under 5% false flags on the HWU64 and HINT3
   domains (eval/RESULTS.md);
4. **declared lineage**: optional fields of each example (kept in `Example.meta` on load):
   `seed_source` ("synthetic", "generated", "model" or "llm" mark a synthetic seed) and
   `parent_ids` (an id or a list of ids). A parent found in an earlier synthetic batch, or in the
   batch itself (which is synthetic), makes a synthetic-from-synthetic chain; the chain depth
   counts synthetic generations back to the first real or unknown ancestor. `round` groups the
   per-round shares.

An example with any of this evidence is "recursion-seeded". The report gives the share per round,
the evidence per kind, and the nearest synthetic and real neighbour of each flagged example.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter, stage
from clusterdiv.core.records import Example, text_hash
from clusterdiv.modes.embed import DEFAULT_EMBEDDING_MODEL, Embedder, embed_texts
from clusterdiv.modes.run import RunContext
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import FlaggedExample, Lineage, Neighbour, RoundShare
from clusterdiv.tasks.anchoring._common import Loaded, load_examples, nearest

DEFAULT_PARAPHRASE_THRESHOLD = 0.9
THRESHOLD_CLIP = (0.8, 0.98)
MIN_REAL_FOR_CALIBRATION = 20
DEFAULT_REAL_PERCENTILE = 97.0
DEFAULT_NEAR_DUP_JACCARD = 0.8
SHINGLE = 5
SYNTHETIC_SEED_VALUES = ("synthetic", "generated", "model", "llm")
NO_ROUND = "(no round)"
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The form duplicates are compared in: NFKC, lower-case, no punctuation, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    norm = normalize_text(text)
    if len(norm) <= k:
        return {norm}
    return {norm[i:i + k] for i in range(len(norm) - k + 1)}


def _shingle_matrix(sets: Sequence[set[str]], vocab: dict[str, int]) -> tuple[list[int], list[int]]:
    indptr, indices = [0], []
    for s in sets:
        indices.extend(vocab.setdefault(g, len(vocab)) for g in s)
        indptr.append(len(indices))
    return indptr, indices


def words(text: str) -> set[str]:
    return set(normalize_text(text).split())


def max_overlap(queries: Sequence[str], keys: Sequence[str], *, measure: str = "jaccard", k: int = SHINGLE,
                exclude_self: bool = False, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Highest exact overlap of each query against `keys`, and its index (-1 when no keys).

    `jaccard`: character k-shingle Jaccard. `containment`: the share of the key's words found in
    the query; a light paraphrase keeps nearly all its parent's words whatever it adds around them.
    `exclude_self` is for a set against itself: query i never matches key i.
    """
    from scipy.sparse import csr_matrix

    if measure not in ("jaccard", "containment"):
        raise ValueError(f"unknown overlap measure {measure!r}")
    n = len(queries)
    best, arg = np.zeros(n), np.full(n, -1, dtype=np.int64)
    if not keys or not n:
        return best, arg
    vocab: dict[str, int] = {}
    units = (lambda t: shingles(t, k)) if measure == "jaccard" else words
    q_ptr, q_idx = _shingle_matrix([units(t) for t in queries], vocab)
    k_ptr, k_idx = _shingle_matrix([units(t) for t in keys], vocab)
    shape = len(vocab)
    Q = csr_matrix((np.ones(len(q_idx), np.float32), q_idx, q_ptr), shape=(n, shape))
    K = csr_matrix((np.ones(len(k_idx), np.float32), k_idx, k_ptr), shape=(len(keys), shape))
    q_size = np.diff(np.asarray(q_ptr))
    k_size = np.diff(np.asarray(k_ptr))
    KT = K.T.tocsc()
    for start in range(0, n, chunk):
        inter = (Q[start:start + chunk] @ KT).toarray()
        if measure == "jaccard":
            score = inter / np.maximum(q_size[start:start + chunk, None] + k_size[None, :] - inter, 1)
        else:
            score = inter / np.maximum(k_size[None, :], 1)
        if exclude_self:
            rows = np.arange(score.shape[0])
            keep = rows + start < score.shape[1]
            score[rows[keep], rows[keep] + start] = -1.0
        arg[start:start + score.shape[0]] = score.argmax(axis=1)
        best[start:start + score.shape[0]] = np.maximum(score.max(axis=1), 0.0)
    return best, arg


def max_jaccard(queries: Sequence[str], keys: Sequence[str], *, k: int = SHINGLE, chunk: int = 256
                ) -> tuple[np.ndarray, np.ndarray]:
    """Highest exact shingle Jaccard of each query against `keys`, and its index (-1 when no keys)."""
    return max_overlap(queries, keys, measure="jaccard", k=k, chunk=chunk)


def _parents(example: Example) -> list[str]:
    value = example.meta.get("parent_ids")
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


def _round(example: Example) -> str:
    value = example.meta.get("round")
    return NO_ROUND if value is None or value == "" else str(value)


def _chain_depths(batch: list[Example], previous: list[Example], real_ids: set[str]) -> dict[str, int]:
    """Synthetic generations behind each batch example, following declared `parent_ids`.

    A synthetic example with no known synthetic parent is generation 1; one with a synthetic parent
    of generation g is g + 1. Batch ids shadow earlier batches'; real and unknown parents end a chain.
    """
    graph: dict[str, list[str]] = {}
    for e in previous:
        graph.setdefault(e.id, _parents(e))
    for e in batch:
        graph[e.id] = _parents(e)
    depth: dict[str, int] = {}

    def visit(node: str, stack: set[str]) -> int:
        if node in depth:
            return depth[node]
        if node in stack:  # a declared cycle: count it once rather than loop
            return 1
        stack.add(node)
        parents = [p for p in graph.get(node, []) if p in graph and p not in real_ids]
        value = 1 + max((visit(p, stack) for p in parents), default=0)
        stack.discard(node)
        depth[node] = value
        return value

    return {e.id: visit(e.id, set()) for e in batch}


def calibrate_threshold(real_vectors: np.ndarray | None, percentile: float) -> tuple[float, str]:
    """The cosine cut: closer to an earlier synthetic example than real examples are to each other."""
    if real_vectors is None or real_vectors.shape[0] < MIN_REAL_FOR_CALIBRATION:
        why = ("no real data given" if real_vectors is None
               else f"only {real_vectors.shape[0]} real examples (< {MIN_REAL_FOR_CALIBRATION})")
        return DEFAULT_PARAPHRASE_THRESHOLD, (
            f"fixed default {DEFAULT_PARAPHRASE_THRESHOLD} ({why}; MiniLM cosine validated in the tests to "
            "separate paraphrases of earlier synthetic texts from independent texts)")
    sims, _ = nearest(real_vectors, real_vectors, exclude_self=True)
    sims = sims[np.isfinite(sims)]
    raw = float(np.percentile(sims, percentile))
    lo, hi = THRESHOLD_CLIP
    value = min(max(raw, lo), hi)
    clipped = "" if value == raw else f", clipped from {raw:.3f} to [{lo}, {hi}]"
    return value, (f"cosine >= the {percentile:g}th percentile of each real example's cosine to its nearest other "
                   f"real example over {real_vectors.shape[0]} distinct real texts{clipped}")


def calibrate_evidence(null: np.ndarray, percentile: float) -> tuple[float, str]:
    """The cut on cosine + Jaccard to the nearest earlier synthetic example, from real data.

    `null` holds that evidence for each distinct real example (against the same earlier batches):
    an example is flagged when it is closer to them than `percentile`% of independent real
    examples are, so about (100 - percentile)% of fresh real data is flagged, in a dense
    single-domain set as in a broad one.
    """
    null = null[np.isfinite(null)]
    value = float(np.percentile(null, percentile))
    return value, (f"cosine + 5-shingle Jaccard to the nearest earlier synthetic example >= {value:.3f}: the "
                   f"{percentile:g}th percentile of that evidence over {null.shape[0]} distinct real texts, each "
                   "against the same earlier batches")


def check_lineage(
    batch: Any,
    *,
    against: Sequence[Any],
    real: Any = None,
    embedding_model: str | Embedder = DEFAULT_EMBEDDING_MODEL,
    threshold: float | None = None,
    real_percentile: float = DEFAULT_REAL_PERCENTILE,
    near_dup_jaccard: float = DEFAULT_NEAR_DUP_JACCARD,
    synthetic_seed_values: Sequence[str] = SYNTHETIC_SEED_VALUES,
    max_listed: int = 100,
    cache: ModelCache | None = None,
    progress: ProgressReporter | None = None,
    load_options: dict[str, Any] | None = None,
) -> Report:
    """Flag batch examples that copy or paraphrase earlier synthetic batches rather than real data.

    `against` holds the earlier synthetic batches (paths, texts, Examples or LoadedCorpus); `real`
    the real data the batch should be anchored in. See the module docstring for the evidence and
    the threshold's calibration.
    """
    if not against:
        raise InputError("give at least one earlier synthetic batch (--against)")
    if not 0.0 < near_dup_jaccard <= 1.0:
        raise InputError(f"near-duplicate Jaccard must be within (0, 1], got {near_dup_jaccard}")
    if not 0.0 < real_percentile < 100.0:
        raise InputError(f"real percentile must be within (0, 100), got {real_percentile}")
    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            loaded = load_examples(batch, role="batch", load_options=load_options)
            previous: list[Loaded] = [load_examples(a, role=f"earlier synthetic batch {i + 1}", load_options=load_options)
                                      for i, a in enumerate(against)]
            real_loaded = load_examples(real, role="real data", load_options=load_options) if real is not None else None

        examples = loaded.examples
        prev_examples = [e for p in previous for e in p.examples]
        prev_origin = [p.name for p in previous for _ in p.examples]
        real_examples = real_loaded.examples if real_loaded is not None else []
        texts = loaded.texts
        n = len(examples)
        reasons: list[list[str]] = [[] for _ in range(n)]

        # 1. exact duplicates of the normalised text
        prev_hash: dict[str, int] = {}
        for j, e in enumerate(prev_examples):
            prev_hash.setdefault(text_hash(normalize_text(e.text)), j)
        real_hash = {text_hash(normalize_text(e.text)) for e in real_examples}
        copies_of_real = 0
        for i, text in enumerate(texts):
            h = text_hash(normalize_text(text))
            if h in real_hash:
                copies_of_real += 1
            elif h in prev_hash:
                j = prev_hash[h]
                reasons[i].append(f"exact_duplicate of {prev_origin[j]}:{prev_examples[j].id}")

        # Calibration set: distinct real texts that are not themselves copies of an earlier synthetic text.
        distinct = sorted({normalize_text(e.text): k for k, e in enumerate(real_examples)
                           if text_hash(normalize_text(e.text)) not in prev_hash}.values())
        calib_texts = [real_examples[k].text for k in distinct]

        # 2. near duplicates by shingle Jaccard
        with run.stage("embed"):
            prev_texts = [e.text for e in prev_examples]
            jac_syn, jac_syn_arg = max_jaccard(texts, prev_texts)
            jac_real, _ = max_jaccard(texts, [e.text for e in real_examples])
            jaccard_cut = near_dup_jaccard
            for i in range(n):
                if reasons[i] or jac_syn[i] < jaccard_cut or jac_syn[i] <= jac_real[i]:
                    continue
                j = int(jac_syn_arg[i])
                reasons[i].append(f"near_duplicate of {prev_origin[j]}:{prev_examples[j].id} "
                                  f"(jaccard {jac_syn[i]:.2f})")

            # 3. paraphrases by embedding nearest neighbour
            embedder = run.embedder(embedding_model)
            with stage(run.progress, "embed", n + len(prev_examples) + len(real_examples)) as advance:
                X = embed_texts(texts, model=embedder, cache=run.cache, progress=advance)
                P = embed_texts([e.text for e in prev_examples], model=embedder, cache=run.cache, progress=advance)
                R = (embed_texts([e.text for e in real_examples], model=embedder, cache=run.cache, progress=advance)
                     if real_examples else None)
        syn_sim, syn_arg = nearest(X, P)
        real_sim, real_arg = nearest(X, R) if R is not None else (np.full(n, -np.inf), np.full(n, -1))
        # (a) cosine alone, against a cut calibrated on real-to-real distances (or the fixed default);
        # (b) cosine plus shingle Jaccard to the nearest earlier synthetic example (a light paraphrase
        #     keeps both the meaning and most of the characters), against how close independent real
        #     examples come to the same earlier batches. Each also needs the example to be closer to
        #     the earlier batches than to any real example: a rewrite of real data is anchored in it.
        #  (c) the margin: how much closer (cosine + Jaccard + word containment) the example is to the
        #      earlier batches than to its nearest real example, against the same margin of independent
        #      real examples (their nearest *other* real example). In a dense domain every utterance
        #      has a close real neighbour, so (a) and (b) miss paraphrases whose parent is only a
        #      little closer than real data is; the margin asks how much closer, not how close.
        evidence = syn_sim + jac_syn
        evidence_cut: float | None = None
        margin_cut: float | None = None
        margin = np.zeros(n)
        if threshold is None:
            distinct_all = sorted({normalize_text(e.text): k for k, e in enumerate(real_examples)}.values())
            threshold, calibration = calibrate_threshold(R[distinct_all] if R is not None else None,
                                                         real_percentile)
            if R is not None and len(distinct) >= MIN_REAL_FOR_CALIBRATION:
                null_syn = nearest(R[distinct], P)[0] + max_jaccard(calib_texts, prev_texts)[0]
                evidence_cut, how = calibrate_evidence(null_syn, real_percentile)
                calibration += "; or " + how
                margin = (evidence + max_overlap(texts, prev_texts, measure="containment")[0]
                          - real_sim - jac_real
                          - max_overlap(texts, [e.text for e in real_examples], measure="containment")[0])
                null_margin = (null_syn + max_overlap(calib_texts, prev_texts, measure="containment")[0]
                               - nearest(R[distinct], R[distinct], exclude_self=True)[0]
                               - max_overlap(calib_texts, calib_texts, exclude_self=True)[0]
                               - max_overlap(calib_texts, calib_texts, measure="containment", exclude_self=True)[0])
                margin_cut = float(np.percentile(null_margin, real_percentile))
                calibration += (f"; or that evidence plus word containment exceeds the same evidence to the nearest "
                                f"real example by >= {margin_cut:.3f}: the {real_percentile:g}th percentile of "
                                "that margin for the same real texts (against their nearest other real text)")
        else:
            calibration = f"{threshold} (given)"
        for i in range(n):
            if reasons[i]:
                continue
            by_cosine = syn_sim[i] >= threshold and syn_sim[i] > real_sim[i]
            by_evidence = (evidence_cut is not None and evidence[i] >= evidence_cut
                           and evidence[i] > real_sim[i] + jac_real[i])
            by_margin = margin_cut is not None and margin[i] >= margin_cut and margin[i] > 0
            hit = by_cosine or by_evidence or by_margin
            if hit:
                j = int(syn_arg[i])
                reasons[i].append(f"paraphrase of {prev_origin[j]}:{prev_examples[j].id} "
                                  f"(cosine {syn_sim[i]:.3f}"
                                  + (f" > real {real_sim[i]:.3f})" if R is not None else ")"))

        # 4. declared lineage
        seed_values = {v.lower() for v in synthetic_seed_values}
        batch_ids = {e.id for e in examples}
        prev_ids = {e.id for e in prev_examples}
        real_ids = {e.id for e in real_examples}
        depths = _chain_depths(examples, prev_examples, real_ids)
        declared_any = any("parent_ids" in e.meta or "seed_source" in e.meta for e in examples)
        for i, e in enumerate(examples):
            source = e.meta.get("seed_source")
            if isinstance(source, str) and source.strip().lower() in seed_values:
                reasons[i].append(f"declared seed_source={source.strip()}")
            synthetic_parents = [p for p in _parents(e) if p not in real_ids and (p in prev_ids or p in batch_ids)]
            if synthetic_parents:
                reasons[i].append(f"declared parent(s) in synthetic data: {', '.join(synthetic_parents[:3])} "
                                  f"(chain depth {depths[e.id]})")

        def kind(reason: str) -> str:
            return "declared" if reason.startswith("declared") else reason.split(" ", 1)[0]

        flagged_idx = [i for i in range(n) if reasons[i]]
        by_evidence = Counter(kind(r) for i in flagged_idx for r in reasons[i])
        rounds: dict[str, list[int]] = {}
        for i, e in enumerate(examples):
            rounds.setdefault(_round(e), []).append(i)

        def round_key(name: str) -> tuple[int, float, str]:
            try:
                return (0, float(name), name)
            except ValueError:
                return (1, 0.0, name)

        round_rows = []
        for name in sorted(rounds, key=round_key):
            idx = rounds[name]
            hit = [i for i in idx if reasons[i]]
            round_rows.append(RoundShare(
                round=name, n=len(idx), recursion_seeded=len(hit), share=len(hit) / len(idx),
                by_evidence=dict(Counter(kind(r) for i in hit for r in reasons[i])),
            ))

        def neighbour(sims: np.ndarray, args: np.ndarray, pool: list[Example], origin: Sequence[str], i: int
                      ) -> Neighbour | None:
            if not pool or args[i] < 0:
                return None
            j = int(args[i])
            return Neighbour(id=pool[j].id, origin=origin[j], similarity=float(sims[i]))

        real_origin = [real_loaded.name] * len(real_examples) if real_loaded is not None else []
        flagged = [
            FlaggedExample(
                id=examples[i].id, round=_round(examples[i]), reasons=reasons[i],
                nearest_synthetic=neighbour(syn_sim, syn_arg, prev_examples, prev_origin, i),
                nearest_real=neighbour(real_sim, real_arg, real_examples, real_origin, i),
                chain_depth=depths[examples[i].id] if declared_any else None,
            )
            for i in flagged_idx[:max_listed]
        ]
        rule = ("recursion-seeded = exact or near duplicate of an earlier synthetic example, OR nearest earlier "
                "synthetic example at cosine >= threshold"
                + (" and closer than the nearest real example" if R is not None else "")
                + (f", OR cosine + Jaccard to it >= {evidence_cut:.3f} and more than to the nearest real example"
                   if evidence_cut is not None else "")
                + (f", OR cosine + Jaccard + word containment to it exceeds that to the nearest real example by "
                   f">= {margin_cut:.3f}" if margin_cut is not None else "")
                + ", OR declared synthetic seed / synthetic parent")
        section = Lineage(
            n_batch=n,
            against=[{"source": p.name, "n": len(p.examples)} for p in previous],
            real={"source": real_loaded.name, "n": len(real_examples)} if real_loaded is not None else None,
            embedding_model=embedder.spec.name, threshold=float(threshold), calibration=calibration,
            near_dup_jaccard=jaccard_cut, shingle_size=SHINGLE, rule=rule,
            recursion_seeded=len(flagged_idx), share=len(flagged_idx) / n, by_evidence=dict(by_evidence),
            copies_of_real=copies_of_real,
            max_chain_depth=max(depths.values()) if declared_any else None,
            rounds=round_rows, flagged_ids=[examples[i].id for i in flagged_idx], flagged=flagged,
        )
        return Report(command="lineage", source=loaded.source, content_hash=loaded.content_hash, n_input=n,
                      skipped=loaded.skipped, lineage=section, timings=run.finish())
