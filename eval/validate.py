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

from eval.corpora import FAMILIES, Dataset, build_all, load_dataset  # noqa: E402

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
    from clusterdiv.records import Example, text_hash

    return [Example(id="t" + text_hash(t)[:16], text=t) for t in texts]


class Scorer:
    """Runs the product's stage functions over the union of texts once, then scores corpora cheaply."""

    def __init__(self, *, model: str, cache_dir: Path | None, embed_fields: list[str] | None,
                 clustering: dict[str, Any], reference_size: int, seed: int = 0):
        from clusterdiv.cache import ModelCache
        from clusterdiv.cluster import ClusterParams
        from clusterdiv.embed import Embedder
        from clusterdiv.llm.structured import LLMSettings
        from clusterdiv.prompts import PromptTemplate

        self.cache = ModelCache(cache_dir)
        self.prompt = PromptTemplate.load()
        self.fields = embed_fields or self.prompt.spec.embed
        self.llm = LLMSettings(model=model)
        self.embedder = Embedder()
        self.params = ClusterParams(**clustering)
        self.reference_size = reference_size
        self.seed = seed
        self.criteria: dict[str, dict[str, str] | None] = {}
        self.criteria_vec: dict[str, np.ndarray] = {}
        self.raw_vec: dict[str, np.ndarray] = {}
        self.cost: dict[str, float] = {}

    def prepare(self, texts: list[str], label: str) -> None:
        from clusterdiv.embed import embed_texts
        from clusterdiv.extract import criteria_text, extract_criteria
        from clusterdiv.llm.structured import CallStats

        texts = sorted(set(texts) - set(self.criteria))
        examples = _examples(texts)
        stats = CallStats()
        started = time.perf_counter()
        done = 0
        for start in range(0, len(examples), 200):  # chunks: progress lines, and each chunk is cached
            chunk = examples[start: start + 200]
            for ex, e in zip(chunk, extract_criteria(chunk, model=self.llm, cache=self.cache,
                                                     prompt=self.prompt, stats=stats), strict=True):
                self.criteria[ex.text] = e.criteria
            done += len(chunk)
            print(f"  [{label}] criteria {done}/{len(examples)} ({stats.calls} model calls, "
                  f"{stats.cache_hits} cached, {time.perf_counter() - started:.0f}s)", file=sys.stderr, flush=True)
        extract_s = time.perf_counter() - started
        ok = [t for t in texts if self.criteria.get(t)]
        started = time.perf_counter()
        vecs = embed_texts([criteria_text(self.criteria[t] or {}, self.fields) for t in ok],
                           model=self.embedder, cache=self.cache)
        self.criteria_vec.update(zip(ok, vecs, strict=True))
        raw = embed_texts(texts, model=self.embedder, cache=self.cache)
        self.raw_vec.update(zip(texts, raw, strict=True))
        self.cost = {
            "unique_texts": len(texts), "model_calls": stats.calls, "cache_hits": stats.cache_hits,
            "failures": stats.failures, "extract_s": extract_s, "embed_s": time.perf_counter() - started,
        }

    def headline(self, texts: list[str]) -> tuple[dict[str, float], list[int], list[str]]:
        from clusterdiv.cluster import cluster_vectors
        from clusterdiv.scoring import score_labels

        ok = [t for t in texts if t in self.criteria_vec]
        X = np.vstack([self.criteria_vec[t] for t in ok])
        labels = cluster_vectors(X, params=self.params, seed=self.seed).labels
        s = score_labels(labels, reference_size=self.reference_size, n_boot=0, seed=self.seed)
        return {"score": s.score, "score_normalized": s.score_normalized, "n_clusters": s.n_clusters,
                "n_noise": s.n_noise, "failed": len(texts) - len(ok)}, labels, ok

    def raw_clusters(self, texts: list[str]) -> list[int]:
        from clusterdiv.cluster import cluster_vectors

        return cluster_vectors(np.vstack([self.raw_vec[t] for t in texts]), params=self.params,
                               seed=self.seed).labels

    def set_metrics(self, texts: list[str], reference: list[str]) -> dict[str, float | None]:
        from clusterdiv.metrics.registry import compute_set_metrics

        values = compute_set_metrics(
            texts, embeddings=np.vstack([self.raw_vec[t] for t in texts]),
            reference_embeddings=np.vstack([self.raw_vec[t] for t in reference]),
            select=set(SET_METRICS), seed=self.seed, bootstrap=0,
        )
        return {k: v.value for k, v in values.items()}


def _with_noise_ids(labels: list[int]) -> list[int]:
    """Noise points as their own singleton labels, matching how the score counts them."""
    top = max(labels, default=0) + 1
    out = []
    for lab in labels:
        if lab == -1:
            out.append(top)
            top += 1
        else:
            out.append(lab)
    return out


def evaluate_dataset(ds: Dataset, scorer: Scorer, *, n: int, reps: int, families: list[str],
                     metrics: bool) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    corpora = build_all(ds, n=n, reps=reps, families=families)
    rng = np.random.default_rng(0)
    reference = [ds.heldout[i].text for i in sorted(rng.choice(len(ds.heldout), size=min(n, len(ds.heldout)),
                                                               replace=False))]
    texts = [r.text for c in corpora for r in c.rows] + reference
    scorer.prepare(texts, ds.name)
    rows: list[dict[str, Any]] = []
    agreement: list[dict[str, float]] = []
    started = time.perf_counter()
    for i, corpus in enumerate(corpora):
        texts = [r.text for r in corpus.rows]
        head, labels, ok = scorer.headline(texts)
        row: dict[str, Any] = {"family": corpus.family, "level": corpus.level, "truth": corpus.truth,
                               "rep": corpus.rep, "n": len(texts), **head}
        if metrics:
            row.update(scorer.set_metrics(texts, reference))
        rows.append(row)
        # Agreement needs several examples per intent: the 10- and 25-intent corpora (>= 6 per intent).
        if corpus.family == "intent_count" and 10 <= corpus.level <= 25:
            gold_by_text = {r.text: r.intent for r in corpus.rows}
            gold = [gold_by_text[t] for t in ok]
            raw = scorer.raw_clusters(ok)
            agreement.append({
                "criteria_ari": adjusted_rand_score(gold, _with_noise_ids(labels)),
                "criteria_nmi": normalized_mutual_info_score(gold, _with_noise_ids(labels)),
                "raw_ari": adjusted_rand_score(gold, _with_noise_ids(raw)),
                "raw_nmi": normalized_mutual_info_score(gold, _with_noise_ids(raw)),
            })
        if (i + 1) % 20 == 0:
            print(f"  [{ds.name}] scored {i + 1}/{len(corpora)} corpora", file=sys.stderr, flush=True)
    return {"dataset": ds.name, "n": n, "reps": reps, "rows": rows, "agreement": agreement,
            "cost": {**scorer.cost, "scoring_s": time.perf_counter() - started, "corpora": len(corpora)}}


def correlations(rows: list[dict[str, Any]], metric_names: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """family -> metric -> {mean, sd, per-rep} of sign-corrected Spearman with the true order."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    by_family_rep: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_family_rep[(row["family"], row["rep"])].append(row)
    families = sorted({f for f, _ in by_family_rep})
    for family in families:
        for metric in metric_names:
            values = []
            for (f, _rep), group in sorted(by_family_rep.items()):
                if f != family or any(g.get(metric) is None for g in group):
                    continue
                rho = spearman([DIRECTION[metric] * g[metric] for g in group], [g["truth"] for g in group])
                if not math.isnan(rho):
                    values.append(rho)
            if values:
                out[family][metric] = {"mean": statistics.fmean(values),
                                       "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                                       "reps": values}
    return out


def plot_family(results: list[dict[str, Any]], family: str, metric_names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        rows = [r for r in result["rows"] if r["family"] == family]
        levels = sorted({r["level"] for r in rows})
        for metric in metric_names:
            means = []
            for lv in levels:
                vals = [r[metric] for r in rows if r["level"] == lv and r.get(metric) is not None]
                means.append(statistics.fmean(vals) * DIRECTION[metric] if vals else float("nan"))
            arr = np.array(means, dtype=float)
            if np.all(np.isnan(arr)) or np.nanmax(arr) == np.nanmin(arr):
                continue
            arr = (arr - np.nanmin(arr)) / (np.nanmax(arr) - np.nanmin(arr))
            style = {"linewidth": 3, "color": "black"} if metric == "score_normalized" else {"alpha": 0.6}
            ax.plot(levels, arr, marker="o", label=metric, **style)
        ax.set_title(f"{result['dataset']}: {family}")
        ax.set_xlabel("controlled level (see RESULTS.md)")
        ax.set_ylabel("sign-corrected, min-max scaled (up = more diverse)")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


TRUTH_NOTE = {
    "intent_count": "level = number of intents sampled (more = more diverse)",
    "head_collapse": "level = Zipf exponent of intent weights (higher = tail lost, less diverse)",
    "recursive_replace": "level = generation, each resampled from the previous only (later = less diverse)",
    "recursive_accumulate": "level = generation, half previous + half fresh real data (later = less diverse, slowly)",
    "ngram_mislead": "level = number of intents, with wording ever more formulaic as intents grow (more = more diverse)",
    "contamination": "level = share of near-duplicates replacing real examples (higher = less diverse)",
}


def write_markdown(results: list[dict[str, Any]], out: Path, plots_dir: Path, meta: dict[str, Any],
                   tuning: list[dict[str, Any]] | None = None) -> str:
    metric_names = [*HEADLINE, *SET_METRICS]
    lines = [
        "# clusterdiv validation results",
        "",
        "_Generated by `python -m eval.validate` ({}); do not edit by hand._".format(meta["command"]),
        "",
        f"- LLM: `{meta['model']}`; embeddings: `{meta['embedding_model']}`; prompt sha256 `{meta['prompt_sha256'][:12]}`; "
        f"embedded criteria: {meta['embed_fields']}; clustering: {meta['clustering']}",
        f"- corpora of n={meta['n']} real examples, {meta['reps']} repetitions (seeds) per family; "
        f"normalised score at reference size {meta['reference_size']}",
        "- Spearman is between each metric (sign-corrected so that 1.0 means it ranks corpora exactly in "
        "the true diversity order) and the known order, per repetition; cells show mean ± sd over repetitions.",
        "- Data: CLINC150 (Larson et al., EMNLP 2019, CC BY 3.0) and HWU64 (Liu et al., IWSDS 2019, CC BY 4.0), "
        "from `../shared/data`; out-of-scope examples dropped; reference sets are held-out real examples.",
        "",
        "## Families",
        "",
    ]
    lines += [f"- **{f}**: {TRUTH_NOTE[f]}" for f in meta["families"]]
    for result in results:
        corr = correlations(result["rows"], metric_names)
        lines += ["", f"## {result['dataset']}: Spearman with the true order", "",
                  "| family | " + " | ".join(metric_names) + " |",
                  "| --- |" + " ---: |" * len(metric_names)]
        for family in meta["families"]:
            cells = []
            for m in metric_names:
                c = corr.get(family, {}).get(m)
                cells.append(f"{c['mean']:.2f} ± {c['sd']:.2f}" if c else "n/a")
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        agreement = result["agreement"]
        if agreement:
            mean = {k: statistics.fmean(a[k] for a in agreement) for k in agreement[0]}
            lines += ["", f"Cluster agreement with gold intents on the 10- and 25-intent corpora ({len(agreement)} corpora):", "",
                      "| clustering | ARI | NMI |", "| --- | ---: | ---: |",
                      f"| LLM criteria (headline) | {mean['criteria_ari']:.3f} | {mean['criteria_nmi']:.3f} |",
                      f"| raw-text embeddings, same clustering | {mean['raw_ari']:.3f} | {mean['raw_nmi']:.3f} |"]
        cost = result["cost"]
        lines += ["", f"Cost of this run: {cost['unique_texts']} unique texts across {cost['corpora']} corpora; "
                  f"{cost['model_calls']} model calls ({cost['cache_hits']} answered from the cache, "
                  f"{cost['failures']} failed); extraction {cost['extract_s']:.0f}s, embedding {cost['embed_s']:.0f}s, "
                  f"scoring all corpora {cost['scoring_s']:.0f}s."]
        cold = result.get("cold_cost")
        if cold and cold["model_calls"]:
            lines += ["", f"Cost of the cold run that filled the cache ({cold.get('when', 'earlier')}): "
                      f"{cold['model_calls']} model calls for {cold['unique_texts']} texts, {cold['failures']} failed; "
                      f"extraction {cold['extract_s']:.0f}s = {1000 * cold['extract_s'] / cold['model_calls']:.0f}s "
                      f"and 1,000 model calls per 1,000 new examples with `{meta['model']}` on this 2-core CPU "
                      "(shared with other jobs at the time); embedding and scoring are seconds."]
        levels = defaultdict(list)
        for row in result["rows"]:
            levels[(row["family"], row["level"])].append(row)
        lines += ["", "<details><summary>Mean values per level</summary>", "",
                  "| family | level | score | score_normalized | distinct_2 | self_bleu | vendi | mauve |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for (family, level), group in sorted(levels.items(), key=lambda kv: (meta["families"].index(kv[0][0]), kv[0][1])):
            def m(k: str, group: list[dict[str, Any]] = group) -> str:
                vals = [g[k] for g in group if g.get(k) is not None]
                return f"{statistics.fmean(vals):.3f}" if vals else "n/a"
            lines.append(f"| {family} | {level:g} | {m('score')} | {m('score_normalized')} | {m('distinct_2')} | "
                         f"{m('self_bleu')} | {m('vendi')} | {m('mauve')} |")
        lines += ["", "</details>"]
    lines += ["", "## Plots", ""]
    for family in meta["families"]:
        lines.append(f"![{family}](plots/{family}.png)")
    if tuning:
        lines += ["", "## Tuning the defaults (before/after)", "",
                  "Headline score (normalised), mean Spearman over repetitions, per dataset and family; "
                  "ARI of the criteria clustering with gold intents.", ""]
        fams = [f for f in meta["families"] if f in tuning[0]["spearman"]]
        lines += ["| variant | dataset | " + " | ".join(fams) + " | ARI |", "| --- | --- |" + " ---: |" * (len(fams) + 1)]
        for t in tuning:
            cells = [f"{t['spearman'].get(f, float('nan')):.2f}" for f in fams]
            lines.append(f"| {t['variant']} | {t['dataset']} | " + " | ".join(cells) + f" | {t['ari']:.3f} |")
    text = "\n".join(lines) + "\n"
    out.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate clusterdiv metrics on controlled-diversity corpora")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="clinc150,hwu64")
    parser.add_argument("--out", type=Path, default=Path("eval/results"))
    parser.add_argument("--markdown", type=Path, default=Path("eval/RESULTS.md"))
    parser.add_argument("--model", default="local/smollm2")
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--reference-size", type=int, default=100)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--embed-fields", default=None, help="comma-separated criteria to embed")
    parser.add_argument("--clustering", default="{}", help="JSON of ClusterParams overrides")
    parser.add_argument("--tune", action="store_true", help="also evaluate the tuning variants in eval/tuning.py")
    parser.add_argument("--no-set-metrics", action="store_true")
    parser.add_argument("--no-tail-audit", action="store_true", help="skip eval.tail_audit_eval (CLINC150 only)")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-render RESULTS.md and plots from a saved validation.json (no scoring)")
    args = parser.parse_args(argv)
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        render(saved["results"], saved["meta"], saved.get("tuning"), args.markdown, args.out,
               with_metrics=not args.no_set_metrics)
        return

    families = [f for f in args.families.split(",") if f]
    embed_fields = args.embed_fields.split(",") if args.embed_fields else None
    clustering = json.loads(args.clustering)
    scorer = Scorer(model=args.model, cache_dir=args.cache_dir, embed_fields=embed_fields, clustering=clustering,
                    reference_size=args.reference_size)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    datasets = {}
    for name in args.datasets.split(","):
        ds = load_dataset(args.data / f"{name}.jsonl")
        datasets[name] = ds
        print(f"== {name}: {len(ds.intents)} intents", file=sys.stderr, flush=True)
        results.append(evaluate_dataset(ds, scorer, n=args.n, reps=args.reps, families=families,
                                        metrics=not args.no_set_metrics))
    meta = {
        "command": " ".join(["python -m eval.validate", *(argv if argv is not None else sys.argv[1:])]),
        "model": args.model, "embedding_model": scorer.embedder.spec.name,
        "prompt_sha256": scorer.prompt.content_hash, "embed_fields": scorer.fields,
        "clustering": scorer.params.model_dump(), "n": args.n, "reps": args.reps, "families": families,
        "reference_size": args.reference_size,
    }
    tuning = None
    if args.tune:
        from eval.tuning import run_tuning

        tuning = run_tuning(scorer, datasets, n=args.n, reps=args.reps, families=families)
    if not args.no_tail_audit and (args.data / "clinc150.jsonl").exists():
        from eval.tail_audit_eval import main as tail_audit_main

        tail_audit_main(["--data", str(args.data)])
    (args.out / "validation.json").write_text(json.dumps({"meta": meta, "results": results, "tuning": tuning},
                                                         indent=1, default=str))
    print(render(results, meta, tuning, args.markdown, args.out, with_metrics=not args.no_set_metrics))


def render(results: list[dict[str, Any]], meta: dict[str, Any], tuning: list[dict[str, Any]] | None,
           markdown: Path, out: Path, *, with_metrics: bool) -> str:
    """Plots and RESULTS.md; appends the tail-audit evaluation when `eval.tail_audit_eval` has run."""
    for result in results:  # remember what a cold run cost, so a cached rerun can still report it
        cold_file = Path(__file__).parent / "results" / f"cold_cost_{result['dataset']}.json"
        if result["cost"]["model_calls"] > 0:
            cold_file.parent.mkdir(parents=True, exist_ok=True)
            cold_file.write_text(json.dumps({**result["cost"], "when": time.strftime("%Y-%m-%d")}))
        if cold_file.exists():
            result["cold_cost"] = json.loads(cold_file.read_text())
    plots_dir = markdown.parent / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    for family in meta["families"]:
        plot_family(results, family, [*HEADLINE, *SET_METRICS] if with_metrics else list(HEADLINE),
                    plots_dir / f"{family}.png")
    text = write_markdown(results, markdown, plots_dir, meta, tuning)
    tail_dir = Path(__file__).parent / "results"  # where eval.tail_audit_eval writes
    for extra in ("tail_audit.md", "tail_audit_llm.md"):
        if (tail_dir / extra).exists():
            text += "\n" + (tail_dir / extra).read_text(encoding="utf-8")
    markdown.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main()
