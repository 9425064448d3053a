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
    MetricInputs,
    MetricSpec,
    MetricValue,
    compute_set_metrics,
    direction,
    metric_specs,
    register_metric,
    resolve_selection,
    select_metrics,
)
from clusterdiv.metrics.semantic import mean_pairwise_cosine, vendi_score
from clusterdiv.metrics.tokenize import tokenize, tokenize_all

__all__ = [
    "ALL_METRICS",
    "METRIC_GROUPS",
    "DensityCoverage",
    "EncodedCorpus",
    "HomogenizationResult",
    "MetricInputs",
    "MetricSpec",
    "MetricValue",
    "PrecisionRecall",
    "SelfBleuResult",
    "compression_ratio",
    "compute_set_metrics",
    "density_coverage",
    "direction",
    "distinct_n",
    "knn_precision_recall",
    "mauve_score",
    "mean_pairwise_cosine",
    "metric_specs",
    "register_metric",
    "resolve_selection",
    "rouge_l_homogenization",
    "select_metrics",
    "self_bleu",
    "tokenize",
    "tokenize_all",
    "vendi_score",
]
