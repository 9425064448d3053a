"""Validation harness: do clusterdiv's scores move the right way when diversity really changes?

    python -m eval.validate --data ../shared/data --out eval/results/

Builds controlled-diversity corpora (eval/corpora.py) from real labelled datasets, scores each with
the headline score and every set metric, and writes eval/RESULTS.md with per-family Spearman
correlations against the known order (sign-corrected: 1.0 is perfect), their spread across
repetitions, agreement of the headline clustering with gold intents (ARI/NMI) against clustering
raw-text embeddings, cost, and plots.

Every corpus draws from one fixed pool of texts per dataset, and all model answers go through the
ordinary cache, so the LLM is paid once per unique text however many corpora reuse it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from eval.corpora import FAMILIES, Dataset, build_all, dataset_source, load_datasets  # noqa: E402
from eval.representations import ViewVectors, cut_scores, view_distances, views_for  # noqa: E402

# +1: higher value = more diverse; -1: higher value = less diverse.
DIRECTION = {
    "score": 1, "score_normalized": 1,
    "distinct_1": 1, "distinct_2": 1, "distinct_3": 1, "distinct_4": 1,
    "self_bleu": -1, "compression_ratio": 1, "embedding_mean_cosine": -1, "vendi": 1,
    "mauve": 1, "recall": 1, "coverage": 1,
}
HEADLINE = ("score", "score_normalized")
SET_METRICS = ("distinct_1", "distinct_2", "distinct_3", "distinct_4", "self_bleu", "compression_ratio",
               "embedding_mean_cosine", "vendi", "mauve", "recall", "coverage")


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _examples(texts: list[str]):
    from clusterdiv.core.records import Example, text_hash

    return [Example(id="t" + text_hash(t)[:16], text=t) for t in texts]


class Scorer:
    """Runs the product's stage functions over the union of texts once, then scores corpora cheaply.

    Raw-text vectors are made for every text; criteria (the LLM) only for datasets named with
    `--criteria-datasets`, because cold extraction costs ~0.8 s per text on this CPU.
    """

    def __init__(self, *, model: str, cache_dir: Path | None, embed_fields: list[str] | None,
                 reference_size: int, seed: int = 0, criteria_reps: int = 1,
                 criteria_families: tuple[str, ...] = ("intent_count",)):
        from clusterdiv.core.cache import ModelCache
        from clusterdiv.core.prompts import PromptTemplate
        from clusterdiv.llm.structured import LLMSettings
        from clusterdiv.modes.embed import Embedder
        from clusterdiv.modes.represent import copied_values

        self.cache = ModelCache(cache_dir)
        self.prompt = PromptTemplate.load()
        self.fields = embed_fields or self.prompt.spec.embed
        self.copied = copied_values([dict(s.output) for s in self.prompt.spec.few_shot], self.fields)
        self.llm = LLMSettings(model=model)
        self.embedder = Embedder()
        self.reference_size = reference_size
        self.seed = seed
        self.criteria_reps = criteria_reps
        self.criteria_families = criteria_families
        self.vv = ViewVectors(text={}, criteria={}, degenerate={})
        self.extracted: set[str] = set()

    def prepare(self, texts: list[str], label: str, *, with_criteria: bool) -> dict[str, Any]:
        from clusterdiv.llm.structured import CallStats
        from clusterdiv.modes.embed import embed_texts
        from clusterdiv.modes.extract import extract_criteria
        from clusterdiv.modes.represent import criteria_text, degenerate_reason

        unique = sorted(set(texts))
        cost: dict[str, Any] = {"unique_texts": len(unique), "model_calls": 0, "cache_hits": 0, "failures": 0,
                                "extract_s": 0.0, "degenerate": 0}
        started = time.perf_counter()
        todo = [t for t in unique if t not in self.vv.text]
        for t, v in zip(todo, embed_texts(todo, model=self.embedder, cache=self.cache), strict=True):
            self.vv.text[t] = v
        if with_criteria:
            stats = CallStats()
            todo = [t for t in unique if t not in self.extracted]
            examples = _examples(todo)
            t0 = time.perf_counter()
            for start in range(0, len(examples), 100):  # chunks: progress lines; each answer is cached
                chunk = examples[start: start + 100]
                extractions = extract_criteria(chunk, model=self.llm, cache=self.cache, prompt=self.prompt,
                                               stats=stats)
                ok = [(ex.text, e.criteria) for ex, e in zip(chunk, extractions, strict=True) if e.criteria]
                vecs = embed_texts([criteria_text(c, self.fields) for _, c in ok], model=self.embedder,
                                   cache=self.cache) if ok else []
                got = dict(zip([t for t, _ in ok], vecs, strict=True))
                for ex, e in zip(chunk, extractions, strict=True):
                    self.extracted.add(ex.text)
                    self.vv.criteria[ex.text] = got.get(ex.text)
                    reason = degenerate_reason(e.criteria, ex.text, fields=self.fields, copied=self.copied)
                    self.vv.degenerate[ex.text] = reason is not None
                print(f"  [{label}] criteria {start + len(chunk)}/{len(examples)} ({stats.calls} model calls, "
                      f"{stats.cache_hits} cached, {time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
            cost.update(model_calls=stats.calls, cache_hits=stats.cache_hits, failures=stats.failures,
                        extract_s=time.perf_counter() - t0,
                        degenerate=sum(self.vv.degenerate.get(t, False) for t in unique))
        cost["prepare_s"] = time.perf_counter() - started
        return cost

    def has_criteria(self, texts: list[str]) -> bool:
        return all(t in self.extracted for t in texts)

    def views(self, texts: list[str], views: list[str]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        """Scores over GRID for every view, and labels per view (for agreement with gold)."""
        out: dict[str, Any] = {}
        labels: dict[str, list[Any]] = {}
        for view in views:
            condensed, kept, fallback = view_distances(texts, view, self.vv)
            scores, labs = cut_scores(condensed, len(kept), reference_size=self.reference_size)
            out[view] = {"scores": [round(x, 6) for x in scores], "kept": len(kept), "fallback": fallback}
            labels[view] = [kept, labs]
        return out, labels

    def set_metrics(self, texts: list[str], reference: list[str], *, mauve: bool) -> dict[str, float | None]:
        from clusterdiv.metrics.registry import compute_set_metrics

        values = compute_set_metrics(
            texts, embeddings=np.vstack([self.vv.text[t] for t in texts]),
            reference_embeddings=np.vstack([self.vv.text[t] for t in reference]),
            select=set(SET_METRICS) - (set() if mauve else {"mauve"}), seed=self.seed, bootstrap=0,
        )
        return {k: v.value for k, v in values.items()}


def dataset_n(name: str, n: int) -> int:
    """HINT3's datasets hold 9-33 training examples per intent: corpora of 60 keep 2-3 intents feasible."""
    return min(n, 60) if name.startswith("hint3") else n


def evaluate_dataset(ds: Dataset, scorer: Scorer, *, n: int, reps: int, families: list[str],
                     metrics: bool, with_criteria: bool) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    n = dataset_n(ds.name, n)
    corpora = build_all(ds, n=n, reps=reps, families=families)
    rng = np.random.default_rng(0)
    reference = [ds.heldout[i].text for i in sorted(rng.choice(len(ds.heldout), size=min(n, len(ds.heldout)),
                                                               replace=False))]
    # criteria cost: only the intent-count family's first repetition is extracted on within-domain
    # datasets (see --criteria-reps); the views needing criteria are scored where every text has them
    crit_texts: list[str] = []
    if with_criteria:
        crit_texts = [r.text for c in corpora if c.rep < scorer.criteria_reps
                      and (c.family in scorer.criteria_families) for r in c.rows]
    cost = scorer.prepare([r.text for c in corpora for r in c.rows] + reference, ds.name, with_criteria=False)
    if crit_texts:
        crit = scorer.prepare(crit_texts, ds.name, with_criteria=True)
        cost = {**cost, **{k: v for k, v in crit.items() if k not in ("unique_texts", "prepare_s")},
                "criteria_texts": crit["unique_texts"]}
    rows: list[dict[str, Any]] = []
    agreement: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, corpus in enumerate(corpora):
        texts = [r.text for r in corpus.rows]
        views = views_for(scorer.has_criteria(texts))
        view_scores, view_labels = scorer.views(texts, views)
        row: dict[str, Any] = {"family": corpus.family, "level": corpus.level, "truth": corpus.truth,
                               "rep": corpus.rep, "n": len(texts), "views": view_scores}
        if metrics:
            # MAUVE costs seconds per corpus (k-means over both sets): the intent-count family's first
            # repetition only; every other metric on every corpus
            row.update(scorer.set_metrics(texts, reference,
                                          mauve=corpus.family == "intent_count" and corpus.rep == 0))
        rows.append(row)
        if corpus.family == "intent_count" and corpus.level >= 5 and n / corpus.level >= 5:
            gold_by_text = {r.text: r.intent for r in corpus.rows}
            entry: dict[str, Any] = {"level": corpus.level, "rep": corpus.rep, "ari": {}}
            for view, (kept, labs) in view_labels.items():
                gold = [gold_by_text[t] for t in kept]
                entry["ari"][view] = [round(float(adjusted_rand_score(gold, lab)), 4) for lab in labs]
            agreement.append(entry)
        if (i + 1) % 50 == 0:
            print(f"  [{ds.name}] scored {i + 1}/{len(corpora)} corpora", file=sys.stderr, flush=True)
    return {"dataset": ds.name, "source": dataset_source(ds.name), "n": n, "reps": reps, "rows": rows,
            "agreement": agreement,
            "cost": {**cost, "scoring_s": time.perf_counter() - started, "corpora": len(corpora)}}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _ari_at(agreement: list[dict[str, Any]], view: str, setting: str, keep=None) -> float | None:
    from eval.representations import GRID

    kind, _, arg = setting.partition("=")
    if kind == "t":
        t = round(float(arg), 2)
    else:
        lo, hi = (float(x) for x in arg.split("-"))
        t = min(GRID, key=lambda g: abs(g - (lo + hi) / 2))  # the modes of a range: its middle cut
    vals = [a["ari"][view][GRID.index(t)] for a in agreement if view in a["ari"] and (keep is None or keep(a))]
    return statistics.fmean(vals) if vals else None


def analyse(results: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """Leave-one-source-out choices and figures for every view, and the baselines beside them."""
    from eval.representations import GRID, RANGES, family_spearman, select_lodo

    source_of = {r["dataset"]: r["source"] for r in results}
    res = {r["dataset"]: r["rows"] for r in results}
    agreement = {r["dataset"]: r["agreement"] for r in results}
    single = [f"t={t:.2f}" for t in GRID]
    multi = [f"multi={lo:.1f}-{hi:.1f}" for lo, hi in RANGES]
    crit_fams = tuple(meta["criteria_families"])
    reps = meta["criteria_reps"]

    def crit_keep(r: dict[str, Any]) -> bool:
        return r["family"] in crit_fams and r["rep"] < reps and "criteria" in r["views"]

    views = sorted({v for rows in res.values() for r in rows for v in r["views"]},
                   key=lambda v: ["text", "criteria", "criteria+gate"].index(v) if "@" not in v else 3 + float(v[7:]))
    comparison = {}
    for view in views:
        for mode, settings in (("one threshold", single), ("multi-resolution", multi)):
            sel = select_lodo(res, source_of, view, settings, keep=crit_keep, families=crit_fams)
            ari = {d: _ari_at(agreement[d], view, o["setting"], keep=lambda a: a["rep"] < reps)
                   for d, o in sel["out_of_sample"].items()}
            comparison[f"{view} | {mode}"] = {
                "view": view, "mode": mode, "folds": {k: v["chosen"] for k, v in sel["folds"].items()},
                "in_sample_setting": sel["in_sample"]["setting"],
                "out_of_sample": {d: {"setting": o["setting"], "spearman": o["families"].get("intent_count"),
                                      "ari": ari[d]} for d, o in sel["out_of_sample"].items()},
                "in_sample": {d: f.get("intent_count") for d, f in sel["in_sample"]["per_dataset"].items()},
            }
    full = {}
    for mode, settings in (("one threshold", single), ("multi-resolution", multi)):
        sel = select_lodo(res, source_of, "text", settings)
        full[mode] = {
            "folds": {k: v["chosen"] for k, v in sel["folds"].items()},
            "in_sample_setting": sel["in_sample"]["setting"],
            "out_of_sample": {d: {"setting": o["setting"], "families": o["families"],
                                  "ari": _ari_at(agreement[d], "text", o["setting"])}
                              for d, o in sel["out_of_sample"].items()},
            "in_sample": sel["in_sample"]["per_dataset"],
        }
    baselines = {d: {m: family_spearman(rows, lambda r, m=m: None if r.get(m) is None else DIRECTION[m] * r[m])
                     for m in SET_METRICS if any(r.get(m) is not None for r in rows)}
                 for d, rows in res.items()}
    return {"comparison": comparison, "text_full": full, "baselines": baselines}


FAMILY_NOTE = {
    "intent_count": "level = number of intents sampled (more = more diverse)",
    "head_collapse": "level = Zipf exponent of intent weights (higher = tail lost, less diverse)",
    "recursive_replace": "level = generation, each resampled from the previous only (later = less diverse)",
    "recursive_accumulate": "level = generation, half previous + half fresh real data (later = less diverse, slowly)",
    "ngram_mislead": "level = number of intents, with wording ever more formulaic as intents grow (more = more diverse)",
    "contamination": "level = share of near-duplicates replacing real examples (higher = less diverse)",
}


def write_markdown(results: list[dict[str, Any]], analysis: dict[str, Any], meta: dict[str, Any]) -> str:
    from clusterdiv.modes.represent import DEFAULT_KIND, DEFAULT_THRESHOLDS

    datasets = [r["dataset"] for r in results]
    crit_datasets = [d for d in datasets if d in meta["criteria_datasets"]]
    L = [
        "# clusterdiv validation results",
        "",
        "_Generated by `python -m eval.validate` from saved JSON (`{}`); do not edit by hand._".format(meta["command"]),
        "",
        "## Protocol: nothing is reported on the data it was tuned on",
        "",
        f"- Datasets: CLINC150 (Larson et al., EMNLP 2019, CC BY 3.0) and HWU64 (Liu et al., IWSDS 2019, CC BY 4.0) "
        "whole, each CLINC150 domain (15 intents) and each HWU64 scenario with at least 5 intents as a "
        "single-domain dataset of its own, and the three single-domain HINT3 datasets (Arora et al., 2020, "
        f"ODbL): {len(datasets)} datasets in all. Out-of-scope examples dropped.",
        f"- Corpora: {meta['n']} real examples each ({dataset_n('hint3', meta['n'])} for HINT3, whose intents hold "
        f"9-33 training examples), {meta['reps']} repetitions (seeds) per family; normalised score at reference "
        f"size {meta['reference_size']}. Families:",
        *[f"  - **{f}**: {FAMILY_NOTE[f]}" for f in meta["families"]],
        "- Figures are Spearman correlations of a metric with the known diversity order, sign-corrected (1.0 = "
        "exact order), averaged over repetitions. ARI is agreement of the modes with the gold intents on the "
        "intent-count corpora with at least 5 intents and 5 examples per intent.",
        "- **Sources** are the groups held out together: CLINC150 with its 10 domains, HWU64 with its scenarios, "
        "and each HINT3 dataset (three companies' products). Every tuned choice (clustering threshold or "
        "multi-resolution range, per representation) is made **leave-one-source-out**: for each source, the "
        "setting with the best mean Spearman over the *other* sources' datasets, then scored on that source. "
        "Those are the out-of-sample figures; in-sample figures (one setting chosen on everything) are shown "
        "separately and never in place of them.",
        f"- Criteria (the LLM, `{meta['model']}`) cost ~0.8 s per new text on this 2-core CPU, so they were "
        f"extracted for the {', '.join('intent_count' if f == 'intent_count' else f for f in meta['criteria_families'])} "
        f"family, repetition{'s' if meta['criteria_reps'] > 1 else ''} < {meta['criteria_reps']}, of "
        f"{len(crit_datasets)} datasets: {', '.join(crit_datasets)}. The representation comparison uses exactly "
        "those corpora for every representation; the raw-text representation is then evaluated on everything.",
        "",
        "## Choosing the representation (out of sample)",
        "",
        "Each row is one representation with its setting chosen leave-one-source-out on the corpora that have "
        "criteria; cells are out-of-sample intent-count Spearman / ARI with gold intents.",
        "",
        "| representation | setting chosen per held-out source | " + " | ".join(crit_datasets) + " | mean Spearman | mean ARI |",
        "| --- | --- |" + " ---: |" * (len(crit_datasets) + 2),
    ]
    for key, c in analysis["comparison"].items():
        oos = c["out_of_sample"]
        cells = [f"{_fmt(oos[d]['spearman'])} / {_fmt(oos[d]['ari'])}" if d in oos else "n/a" for d in crit_datasets]
        sp = [oos[d]["spearman"] for d in crit_datasets if d in oos and oos[d]["spearman"] is not None]
        ar = [oos[d]["ari"] for d in crit_datasets if d in oos and oos[d]["ari"] is not None]
        folds = ", ".join(f"{k.split(':')[-1]}: {v}" for k, v in c["folds"].items())
        L.append(f"| {key} | {folds} | " + " | ".join(cells) +
                 f" | {_fmt(statistics.fmean(sp) if sp else None)} | {_fmt(statistics.fmean(ar) if ar else None)} |")
    full = analysis["text_full"]
    one = full["one threshold"]
    L += [
        "",
        f"**Shipped default: representation `{DEFAULT_KIND}` at cosine distance "
        f"{DEFAULT_THRESHOLDS[DEFAULT_KIND]}** (`clusterdiv.modes.represent`); the in-sample choice over every dataset "
        f"is `{one['in_sample_setting']}`, and the leave-one-source-out choices are "
        + ", ".join(f"`{v}` ({k})" for k, v in one["folds"].items()) + ".",
        "",
        "## The default on every dataset and family (raw text, out of sample)",
        "",
        "Out-of-sample Spearman of the default's `score_normalized` per family, and mode-vs-gold ARI.",
        "",
        "| dataset | setting | " + " | ".join(meta["families"]) + " | ARI |",
        "| --- | --- |" + " ---: |" * (len(meta["families"]) + 1),
    ]
    for d in datasets:
        o = one["out_of_sample"].get(d)
        if not o:
            continue
        L.append(f"| {d} | {o['setting']} | " + " | ".join(_fmt(o["families"].get(f)) for f in meta["families"])
                 + f" | {_fmt(o['ari'])} |")
    mr = full["multi-resolution"]
    L += [
        "",
        "## Baselines side by side (Spearman per family, raw texts)",
        "",
        "The default (raw-text modes, one threshold, out of sample) and its multi-resolution variant beside "
        "every set metric at its own definition: lexical (distinct-n, self-BLEU, compression), embedding "
        "(mean cosine, Vendi) and against held-out real data (MAUVE, k-NN recall/coverage).",
        "",
    ]
    metric_cols = [m for m in SET_METRICS if any(m in analysis["baselines"][d] for d in datasets)]
    for family in meta["families"]:
        L += [f"### {family}", "", "| dataset | default | multi-res | " + " | ".join(metric_cols) + " |",
              "| --- |" + " ---: |" * (len(metric_cols) + 2)]
        means: dict[str, list[float]] = defaultdict(list)
        for d in datasets:
            o = one["out_of_sample"].get(d, {}).get("families", {}).get(family)
            m = mr["out_of_sample"].get(d, {}).get("families", {}).get(family)
            base = [analysis["baselines"][d].get(mc, {}).get(family) for mc in metric_cols]
            for k, v in zip(["default", "multi", *metric_cols], [o, m, *base], strict=True):
                if v is not None:
                    means[k].append(v)
            L.append(f"| {d} | {_fmt(o)} | {_fmt(m)} | " + " | ".join(_fmt(b) for b in base) + " |")
        L.append("| **mean** | " + " | ".join(_fmt(statistics.fmean(means[k]) if means[k] else None)
                                          for k in ["default", "multi", *metric_cols]) + " |")
        L.append("")
    L += ["## In sample vs out of sample (raw-text default)", "",
          f"In sample = one setting (`{one['in_sample_setting']}`) chosen on every dataset, including the one "
          "reported. Mean Spearman over the tuning families (intent_count, head_collapse, ngram_mislead, contamination).",
          "", "| dataset | in sample | out of sample |", "| --- | ---: | ---: |"]
    from eval.representations import objective

    for d in datasets:
        ins = one["in_sample"].get(d)
        oos = one["out_of_sample"].get(d, {}).get("families")
        L.append(f"| {d} | {_fmt(objective(ins) if ins else None)} | {_fmt(objective(oos) if oos else None)} |")
    L += ["", "## Cost", ""]
    for r in results:
        c = r["cost"]
        if c.get("model_calls", 0) + c.get("cache_hits", 0) > 0:
            L.append(f"- {r['dataset']}: criteria for {c.get('criteria_texts', c['model_calls'] + c['cache_hits'])} "
                     f"texts, {c['model_calls']} model calls in this run ({c['cache_hits']} from the cache), "
                     f"{c['failures']} failed; {c['degenerate']} answers degenerate (one-word, generic or copied "
                     f"intent), extraction {c['extract_s']:.0f} s.")
    cold = meta.get("cold_cost")
    if cold:
        L.append(f"- The cold run that filled the cache: {cold['model_calls']} model calls in {cold['extract_s']:.0f} s "
                 f"= {cold['extract_s'] / max(1, cold['model_calls']):.2f} s per new text with `{meta['model']}` "
                 "(2-core CPU, shared with other jobs); raw-text embedding and all scoring take minutes.")
    L.append(f"- Scoring every corpus of every dataset from cached vectors: "
             f"{sum(r['cost']['scoring_s'] for r in results):.0f} s for {sum(r['cost']['corpora'] for r in results)} corpora.")
    return "\n".join(L) + "\n"


def render(results: list[dict[str, Any]], meta: dict[str, Any], markdown: Path, out: Path) -> str:
    """RESULTS.md from saved results; appends the tail-audit evaluations when they have run."""
    cold_file = out / "cold_cost.json"
    calls = sum(r["cost"].get("model_calls", 0) for r in results)
    if calls:
        cold_file.write_text(json.dumps({"model_calls": calls,
                                         "extract_s": sum(r["cost"].get("extract_s", 0) for r in results),
                                         "when": time.strftime("%Y-%m-%d")}))
    if cold_file.exists():
        meta = {**meta, "cold_cost": json.loads(cold_file.read_text())}
    analysis = analyse(results, meta)
    (out / "analysis.json").write_text(json.dumps(analysis, indent=1, default=str))
    text = write_markdown(results, analysis, meta)
    for extra in ("compare_within.md", "compare_null.md", "tail_within.md", "tail_within_llm.md", "lineage_within.md",
                  "tail_audit.md", "tail_audit_llm.md", "size.md", "hill.md", "seeds_within.md"):
        if (out / extra).exists():
            text += "\n" + (out / extra).read_text(encoding="utf-8")
    markdown.write_text(text, encoding="utf-8")
    return text


DEFAULT_CRITERIA_DATASETS = "hint3:curekart,hint3:powerplay11,hint3:sofmattress,clinc150:banking,hwu64:iot"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate clusterdiv metrics on controlled-diversity corpora")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="clinc150,hwu64,within",
                        help="comma-separated: clinc150, clinc150:banking, clinc150:*, hwu64:*, hint3:*, within")
    parser.add_argument("--criteria-datasets", default=DEFAULT_CRITERIA_DATASETS,
                        help="datasets whose texts get LLM criteria (all: every dataset)")
    parser.add_argument("--criteria-reps", type=int, default=3)
    parser.add_argument("--criteria-families", default="intent_count")
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--markdown", type=Path, default=Path("eval/RESULTS.md"))
    parser.add_argument("--model", default="local/smollm2", help="any litellm model string")
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--reference-size", type=int, default=100)
    parser.add_argument("--cache-dir", type=Path, default=Path("eval/results/cache"),
                        help="model-answer cache (fixed, so reruns are free)")
    parser.add_argument("--embed-fields", default=None, help="comma-separated criteria to embed")
    parser.add_argument("--no-set-metrics", action="store_true")
    parser.add_argument("--no-tail-audit", action="store_true", help="skip eval.tail_audit_eval")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-render RESULTS.md from a saved validation.json (no scoring)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        print(render(saved["results"], saved["meta"], args.markdown, args.out))
        return

    families = [f for f in args.families.split(",") if f]
    embed_fields = args.embed_fields.split(",") if args.embed_fields else None
    scorer = Scorer(model=args.model, cache_dir=args.cache_dir, embed_fields=embed_fields,
                    reference_size=args.reference_size, criteria_reps=args.criteria_reps,
                    criteria_families=tuple(args.criteria_families.split(",")))
    datasets = load_datasets(args.data, args.datasets)
    crit = {d.name for d in datasets} if args.criteria_datasets == "all" else set(
        x for x in args.criteria_datasets.split(",") if x)
    meta = {
        "command": " ".join(["python -m eval.validate", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model, "embedding_model": scorer.embedder.spec.name,
        "prompt_sha256": scorer.prompt.content_hash, "embed_fields": scorer.fields,
        "n": args.n, "reps": args.reps, "families": families, "reference_size": args.reference_size,
        "criteria_datasets": sorted(crit), "criteria_reps": args.criteria_reps,
        "criteria_families": list(scorer.criteria_families),
    }
    results = []
    # datasets with criteria last: the cheap raw-text results are saved before the LLM runs
    for ds in sorted(datasets, key=lambda d: d.name in crit):
        print(f"== {ds.name}: {len(ds.intents)} intents", file=sys.stderr, flush=True)
        results.append(evaluate_dataset(ds, scorer, n=args.n, reps=args.reps, families=families,
                                        metrics=not args.no_set_metrics, with_criteria=ds.name in crit))
        (args.out / "validation.json").write_text(json.dumps({"meta": meta, "results": results}, default=str))
    order = {d.name: i for i, d in enumerate(datasets)}
    results.sort(key=lambda r: order[r["dataset"]])
    (args.out / "validation.json").write_text(json.dumps({"meta": meta, "results": results}, default=str))
    if not args.no_tail_audit and (args.data / "clinc150.jsonl").exists():
        from eval.tail_audit_eval import main as tail_audit_main

        tail_audit_main(["--data", str(args.data)])
    print(render(results, meta, args.markdown, args.out))


if __name__ == "__main__":
    main()
