"""Set-level diversity metrics: lexical (token n-grams), semantic (embeddings), reference-based.

Pure functions on token lists or feature arrays; :func:`compute_set_metrics` runs a selection of
them and labels each result for display. Nothing here imports torch at import time.
"""

from clusterdiv.metrics.lexical import (
    EncodedCorpus,
    HomogenizationResult,
    SelfBleuResult,
    compression_ratio,
    distinct_n,
    rouge_l_homogenization,
    self_bleu,
)
from clusterdiv.metrics.reference import (
    DensityCoverage,
    PrecisionRecall,
    density_coverage,
    knn_precision_recall,
    mauve_score,
)
from clusterdiv.metrics.registry import (
    ALL_METRICS,
    METRIC_GROUPS,
    MetricValue,
    compute_set_metrics,
    resolve_selection,
)
from clusterdiv.metrics.semantic import mean_pairwise_cosine, vendi_score
from clusterdiv.metrics.tokenize import tokenize, tokenize_all

__all__ = [
    "ALL_METRICS",
    "METRIC_GROUPS",
    "DensityCoverage",
    "EncodedCorpus",
    "HomogenizationResult",
    "MetricValue",
    "PrecisionRecall",
    "SelfBleuResult",
    "compression_ratio",
    "compute_set_metrics",
    "density_coverage",
    "distinct_n",
    "knn_precision_recall",
    "mauve_score",
    "mean_pairwise_cosine",
    "resolve_selection",
    "rouge_l_homogenization",
    "self_bleu",
    "tokenize",
    "tokenize_all",
    "vendi_score",
]
