"""Variants of the headline defaults, judged by the validation harness on cached criteria.

Only what is cheap to vary once the LLM answers are cached is tried here: which criteria are
embedded and the UMAP/HDBSCAN settings. Each variant re-embeds (cached) and re-clusters every
corpus; no model is called again.
"""

from __future__ import annotations

import copy
import statistics
import sys
from typing import Any

from clusterdiv.cluster import ClusterParams
from clusterdiv.embed import embed_texts
from clusterdiv.extract import criteria_text

UH = {"method": "umap_hdbscan"}
VARIANTS: list[tuple[str, list[str] | None, dict[str, Any]]] = [
    ("default (agglomerative, cosine 0.3)", None, {}),
    ("agglomerative, cosine 0.2", None, {"distance_threshold": 0.2}),
    ("agglomerative, cosine 0.4", None, {"distance_threshold": 0.4}),
    ("agglomerative, embed intent only", ["intent"], {}),
    ("agglomerative, embed intent+topic+task", ["intent", "topic", "task"], {}),
    ("before: umap+hdbscan eom 3/3", None, UH),
    ("umap+hdbscan, embed intent only", ["intent"], UH),
    ("umap+hdbscan leaf 5/5", None, {**UH, "cluster_selection_method": "leaf", "min_cluster_size": 5, "min_samples": 5}),
    ("umap+hdbscan eom 2/2", None, {**UH, "min_cluster_size": 2, "min_samples": 2}),
    ("umap+hdbscan eom 3/1", None, {**UH, "min_samples": 1}),
    ("umap+hdbscan, 10 neighbours", None, {**UH, "umap_neighbors": 10}),
]


TUNING_FAMILIES = ("intent_count", "head_collapse", "ngram_mislead", "contamination")


def run_tuning(scorer: Any, datasets: dict[str, Any], *, n: int, reps: int, families: list[str]) -> list[dict[str, Any]]:
    """Headline Spearman per family and ARI for each variant (on the families that judge the defaults)."""
    families = [f for f in families if f in TUNING_FAMILIES]
    from eval.validate import correlations, evaluate_dataset

    out = []
    for name, fields, overrides in VARIANTS:
        variant = copy.copy(scorer)
        variant.fields = fields or scorer.prompt.spec.embed
        variant.params = ClusterParams(**{**scorer.params.model_dump(), **overrides})
        if variant.fields != scorer.fields:
            texts = [t for t, c in scorer.criteria.items() if c]
            vecs = embed_texts([criteria_text(scorer.criteria[t], variant.fields) for t in texts],
                               model=scorer.embedder, cache=scorer.cache)
            variant.criteria_vec = dict(zip(texts, vecs, strict=True))
        for ds_name, ds in datasets.items():
            print(f"  tuning: {name} on {ds_name}", file=sys.stderr, flush=True)
            result = evaluate_dataset(ds, variant, n=n, reps=reps, families=families, metrics=False)
            corr = correlations(result["rows"], ["score_normalized"])
            ari = statistics.fmean(a["criteria_ari"] for a in result["agreement"]) if result["agreement"] else float("nan")
            out.append({"variant": name, "dataset": ds_name, "ari": ari,
                        "spearman": {f: corr.get(f, {}).get("score_normalized", {}).get("mean", float("nan"))
                                     for f in families}})
    return out
