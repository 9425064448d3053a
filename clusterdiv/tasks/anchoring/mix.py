"""Mix budget: how much of a training mix is real, overall and in each label or mode.

A mix can hit its overall real/synthetic target and still be all-synthetic inside some modes:
the generator filled the cheap modes and real data only survives in a few. Per-group shares show
where real data no longer anchors the mix. Shares are given by example count and by token count
(tokens under the one rule of `clusterdiv.metrics.tokenize`), because synthetic texts are often
longer and a count ratio then understates how much of the training signal is synthetic.

Groups are the values of a label field when given; otherwise the modes of the whole mix (one
`build_mode_space`, cached like `score`), so that "synthetic dominates this mode" is about a mode
real and synthetic examples share. The modes are the text modes by default (`cluster_on="text"`:
the raw text embeddings, the representation the held-out validation chose for `score`, and no LLM
call); `cluster_on="criteria"` clusters LLM criteria instead, one call per distinct text, which on a
mix of thousands of rows is many minutes of a local model: it is asked for, never the default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import ProgressReporter
from clusterdiv.core.records import Example
from clusterdiv.llm.structured import LLMSettings
from clusterdiv.metrics.tokenize import tokenize_all
from clusterdiv.modes.embed import DEFAULT_EMBEDDING_MODEL
from clusterdiv.modes.run import RunContext
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import MixBudget, MixCounts, MixGroup
from clusterdiv.tasks.anchoring._common import load_examples

DEFAULT_REAL_VALUES = ("real", "human", "gold", "original")
DEFAULT_DOMINANCE = 0.8
DEFAULT_TOLERANCE = 0.05
UNCLUSTERED = "(unclustered)"
FAILED = "(extraction failed)"


def _counts(is_real: Sequence[bool], tokens: Sequence[int]) -> dict[str, Any]:
    n = len(is_real)
    real = sum(is_real)
    real_tokens = sum(t for t, r in zip(tokens, is_real, strict=True) if r)
    all_tokens = sum(tokens)
    return {
        "n": n, "real": real, "synthetic": n - real, "real_share": real / n if n else 0.0,
        "real_tokens": real_tokens, "synthetic_tokens": all_tokens - real_tokens,
        "real_token_share": real_tokens / all_tokens if all_tokens else 0.0,
    }


def _source_value(example: Example, field: str) -> str:
    if field not in example.meta:
        raise InputError(f"example {example.id!r} has no {field!r} field; every example needs one "
                         f"(or pick the field with --source-field)")
    value = example.meta[field]
    if value is None or isinstance(value, (dict, list)):
        raise InputError(f"example {example.id!r}: {field!r} must be a string, got {value!r}")
    return str(value).strip().lower()


def _label_value(example: Example, field: str) -> str:
    value = example.label if example.label is not None else example.meta.get(field)
    if value is None:
        raise InputError(f"example {example.id!r} has no {field!r} label")
    return str(value)


def _cluster_groups(examples: list[Example], *, cluster_on: str, settings: LLMSettings, embedding_model: Any,
                    seed: int, run: RunContext) -> tuple[list[str], dict[str, str], str]:
    from clusterdiv.modes.config import ScoreConfig
    from clusterdiv.modes.modespace import BATCH, build_mode_space
    from clusterdiv.modes.represent import criteria_text

    embedder = run.embedder(embedding_model)
    # each representation clusters at its own validated threshold (Representation.default_threshold)
    config = ScoreConfig(llm=settings, embedding_model=embedder.spec.name, seed=seed,
                         representation={"kind": cluster_on})
    space = build_mode_space({BATCH: examples}, config, run, timed=False)
    empty = [r.example.id for r in space.rows if r.extraction is not None and r.extraction.ok
             and not criteria_text(r.extraction.criteria or {}, space.fields)]
    if empty and cluster_on == "criteria":
        raise InputError(f"criteria {list(space.fields)} are empty for {len(empty)} examples, e.g. {empty[0]}")
    summaries = {f"cluster {c.cluster_id}": c.criteria_summary for c in space.summaries()}
    groups = [FAILED if r.mode is None else UNCLUSTERED if r.mode < 0 else f"cluster {r.mode}" for r in space.rows]
    source = (f"criteria by {settings.model}" if cluster_on == "criteria"
              else f"raw text embeddings by {embedder.spec.name}, no LLM")
    kind = "semantic clusters" if cluster_on == "criteria" else "text modes"
    how = (f"{kind} of the whole mix ({space.clustering.method}, {space.clustering.n_clusters} clusters; {source}; "
           f"noise points pooled as {UNCLUSTERED!r})")
    return groups, summaries, how


def mix_budget(
    data: Any,
    *,
    source_field: str = "source",
    real_values: Sequence[str] = DEFAULT_REAL_VALUES,
    target_real_share: float | None = 0.5,
    tolerance: float = DEFAULT_TOLERANCE,
    label_field: str | None = None,
    cluster_on: Literal["text", "criteria"] = "text",
    dominance_threshold: float = DEFAULT_DOMINANCE,
    model: LLMSettings | str | None = None,
    embedding_model: Any = DEFAULT_EMBEDDING_MODEL,
    seed: int = 0,
    cache: ModelCache | None = None,
    progress: ProgressReporter | None = None,
    load_options: dict[str, Any] | None = None,
) -> Report:
    """Real versus synthetic counts and token shares of a mix, overall and per label or cluster.

    An example is real when its `source_field` value (case-insensitive) is one of `real_values`,
    synthetic otherwise; every distinct value is listed with its count so a typo shows. A group
    is flagged `synthetic_dominates` when its synthetic share (by count) exceeds
    `dominance_threshold`, `synthetic_only` when it has no real example at all. Without a
    `label_field` the groups are the mix's modes, clustered on `cluster_on` (see the module docstring).
    """
    if cluster_on not in ("text", "criteria"):
        raise InputError(f"cluster_on must be 'text' or 'criteria', got {cluster_on!r}")
    if target_real_share is not None and not 0.0 <= target_real_share <= 1.0:
        raise InputError(f"target real share must be within 0..1, got {target_real_share}")
    if not 0.0 < dominance_threshold <= 1.0:
        raise InputError(f"dominance threshold must be within (0, 1], got {dominance_threshold}")
    options = dict(load_options or {})
    if label_field is not None:
        options["label_field"] = label_field
    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            loaded = load_examples(data, role="dataset", load_options=options)
            examples = loaded.examples
            real_set = {v.strip().lower() for v in real_values}
            values = [_source_value(e, source_field) for e in examples]
            is_real = [v in real_set for v in values]
            tokens = [len(tok) for tok in tokenize_all(loaded.texts)]

        summaries: dict[str, str] = {}
        if label_field is not None:
            groups = [_label_value(e, label_field) for e in examples]
            group_by = f"label field {label_field!r}"
        else:
            settings = model if isinstance(model, LLMSettings) else LLMSettings(**({"model": model} if model else {}))
            with run.stage("cluster"):
                groups, summaries, group_by = _cluster_groups(examples, cluster_on=cluster_on, settings=settings,
                                                              embedding_model=embedding_model, seed=seed, run=run)

        overall = MixCounts(**_counts(is_real, tokens))
        status: Literal["on_target", "too_synthetic", "too_real", "no_target"] = "no_target"
        add_real = drop_synth = None
        to_reach = "no target given"
        if target_real_share is not None:
            gap = overall.real_share - target_real_share
            if abs(gap) <= tolerance:
                status, to_reach = "on_target", (f"real share {overall.real_share:.1%} is within "
                                                 f"{tolerance:.0%} of the {target_real_share:.0%} target")
            elif gap < 0:
                status = "too_synthetic"
                # real / (real + synth) >= target  <=>  real >= target * synth / (1 - target)
                if target_real_share < 1.0:
                    add_real = max(0, math.ceil(target_real_share * overall.synthetic / (1 - target_real_share)
                                                - overall.real - 1e-9))
                drop_synth = (max(0, overall.synthetic - math.floor(
                    overall.real * (1 - target_real_share) / target_real_share + 1e-9))
                    if overall.real > 0 else None)
                to_reach = (f"add {add_real} real examples" if add_real is not None else "only real data can")
                if drop_synth is not None:
                    to_reach += f" or drop {drop_synth} synthetic examples"
                to_reach += f" to reach {target_real_share:.0%} real"
            else:
                status = "too_real"
                if target_real_share > 0:
                    add_synth = math.ceil(overall.real * (1 - target_real_share) / target_real_share
                                          - overall.synthetic - 1e-9)
                    to_reach = f"room for {max(0, add_synth)} more synthetic examples at {target_real_share:.0%} real"
                else:
                    to_reach = "the target is 0% real: drop the real examples"

        order: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            order.setdefault(g, []).append(i)
        rows: list[MixGroup] = []
        for group, idx in order.items():
            counts = _counts([is_real[i] for i in idx], [tokens[i] for i in idx])
            synthetic_share = counts["synthetic"] / counts["n"]
            if counts["real"] == 0:
                flag: Literal["synthetic_only", "synthetic_dominates", "real_only", "ok"] = "synthetic_only"
            elif synthetic_share > dominance_threshold:
                flag = "synthetic_dominates"
            elif counts["synthetic"] == 0:
                flag = "real_only"
            else:
                flag = "ok"
            rows.append(MixGroup(group=group, share_of_mix=counts["n"] / len(examples),
                                 synthetic_share=synthetic_share, flag=flag, summary=summaries.get(group, ""),
                                 **counts))
        rank = {"synthetic_only": 0, "synthetic_dominates": 1, "real_only": 2, "ok": 3}
        rows.sort(key=lambda r: (rank[r.flag], -r.synthetic_share, -r.n, r.group))
        section = MixBudget(
            source_field=source_field, real_values=sorted(real_set),
            source_values=dict(sorted({v: values.count(v) for v in set(values)}.items())),
            target_real_share=target_real_share, tolerance=tolerance, status=status, to_reach_target=to_reach,
            add_real_for_target=add_real, drop_synthetic_for_target=drop_synth, overall=overall,
            group_by=group_by, dominance_threshold=dominance_threshold, n_groups=len(rows),
            dominated=[r.group for r in rows if r.flag in ("synthetic_only", "synthetic_dominates")],
            groups=rows,
        )
        return Report(command="mix", source=loaded.source, content_hash=loaded.content_hash,
                      n_input=len(examples), skipped=loaded.skipped, mix=section,
                      timings=run.finish())
