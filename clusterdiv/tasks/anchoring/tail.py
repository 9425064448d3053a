"""Tail audit: does a synthetic batch still contain the rare cases that matter?

Generators regress to the mode, so the rare cases (the "tail") are the first thing a synthetic
batch loses, and a diversity score over the whole batch barely moves when they go. The audit asks
the question per tail entry instead: how many batch examples are instances of it?

Two signals answer it, and the report says which one decided:

* **LLM judge** (`prompts/tail_membership.yaml`): "does this message belong to <name>:
  <description>?" answered yes/no under a JSON-schema constraint through `agenerate_structured`,
  so every answer is cached under model + prompt hash + input like every other LLM call.
  Judging every (example, entry) pair costs |batch| x |entries| calls, so only the `judge_top`
  examples most similar to an entry (by embedding) are judged; the rest count as "no". With a
  real tail that is rare in the batch by definition, its members are among the nearest ones.
* **Embedding**: an example covers an entry when its cosine similarity to the entry's nearest
  seed is at least the threshold AND its nearest anchor overall is a seed of that entry (so an
  example between two entries counts once, for the closer one). Anchors are the seeds of all
  entries plus, when the tail is derived from labelled real data, every real example of the
  other labels: those "contrast" examples absorb batch examples that merely resemble a tail entry.
  The batch is its own contrast too: an example must be closer to the entry than to any batch
  example that is less like the entry than it is (`closer_than_batch_neighbours`). Without it, a
  spec entry missing from a single-domain batch was "covered" by its neighbouring intents (within-
  domain recall 0.67 -> 0.80 at precision 0.84, eval/RESULTS.md).

Within one domain (a spec, no contrast set) that was not enough: a missing entry next to a near-
neighbour intent that stays ("reset my password" gone, "why was my password reset" kept) was still
"covered" by a few of the neighbour's examples, since MiniLM puts the two as close as the entry's
own seeds are to each other. The default `margin` rule for a spec adds two tests and a floor:

* the entry's nearest seed must beat every other entry's nearest seed by `SEED_MARGIN`: the spec's
  other entries are the only labelled contrast a spec has, and an example about as close to two
  entries is evidence for neither;
* the entry's nearest seed must rank among the example's `RANK_SHARE` x |candidates| nearest batch
  neighbours (`seed_rank_share`): the seeds must be exchangeable with the examples that match them.
  A present entry's seeds sit among its members; a missing entry's seeds sit at the edge of the
  neighbouring intent, behind all of its siblings. The allowed rank grows with the candidates, so a
  large entry is not penalised for having many members closer than its few seeds;
* an entry with fewer than `MIN_EVIDENCE` matches is uncovered: a lone match is what a
  neighbouring intent leaves behind (the report notes it, with the count).

Every one of those settings (and the threshold floor) was chosen on the CLINC150 domains only and is
reported out of sample on HWU64 and HINT3 (eval/tail_within_eval.py, eval/results/tail_within.md):
in sample it reaches precision and recall >= 0.8 on every domain; out of sample recall rises (0.74 ->
0.95) but precision falls (0.83 -> 0.72), below 0.8 on three of five datasets. `rule="nearest-seed"`
keeps the earlier rule.

Calibration of the embedding threshold (a fixed, documented default; per-entry `threshold:` in the
spec or `threshold=` overrides it):

* with a contrast set (tail derived from `--reference`): 0.5, under the `nearest-seed` rule. The
  nearest-anchor rule against the labelled real data does the discriminating; the threshold only
  rejects examples unlike anything real. On CLINC150 with MiniLM this left 0-2 false members per
  removed intent;
* without one (a spec file): 0.5 under the `margin` rule, whose margins discriminate; 0.65 under
  `nearest-seed`, the MiniLM cosine above which two CLINC150 utterances are usually the same intent.

Each entry also reports its seeds' cohesion (median similarity of each seed to its nearest other
seed): seeds much less similar to each other than the threshold mean members will be missed.

Policies (`judge`): `both` (default) counts an example only when the LLM says yes AND the embedding
rule agrees, because the costly mistake of an audit is to call a tail covered when it is not; `either`
counts it when one of them does; `llm` or `embedding` use one signal (`embedding` makes no LLM call).
The judge is calibrated on every run: beside each entry's candidates it judges the
`CONTROLS_PER_ENTRY` batch examples least like the entry. A judge that calls more than 20% of those
members says yes to anything (the bundled 135M model did, for 22-50 of 50 candidates); it is then
reported (`judge_trusted: false`, with the reason) and coverage falls back to the embedding rule.
A batch no larger than the judged top has no example outside it to serve as a control, so the
controls are topped up from texts known not to be members: the reference's examples of other labels,
else the seeds of the spec's other entries. With fewer than `MIN_CONTROLS` judged controls the judge
is uncalibrated, and an uncalibrated judge is never trusted (a yes-to-everything judge once called 5
absent entries of a 50-example batch covered at 92-98% because nothing could contradict it).
Entries without seeds have no embedding signal: under `both`/`either` a trusted LLM alone decides them,
under `embedding` the similarity to the entry's "name: description" text is used instead (weaker).
With an untrusted judge they are `undecided`, not covered: the description-only similarity is the
weak signal the user did not choose, and "covered" must not rest on a judge that failed its controls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clusterdiv.core.aio import run_sync
from clusterdiv.core.cache import ModelCache
from clusterdiv.core.errors import InputError
from clusterdiv.core.progress import NullProgress, ProgressReporter, stage
from clusterdiv.llm.structured import CallStats, LLMSettings, agenerate_structured, announce_calls
from clusterdiv.modes.embed import DEFAULT_EMBEDDING_MODEL, Embedder, embed_texts
from clusterdiv.modes.run import RunContext
from clusterdiv.reports.report import Report
from clusterdiv.reports.sections import JudgePolicy, TailAudit, TailEntryResult
from clusterdiv.tasks.anchoring._common import load_examples
from clusterdiv.tasks.anchoring.tail_rules import (
    MIN_EVIDENCE,
    embedding_members,
    entry_similarities,
    margin_rule_text,
)
from clusterdiv.tasks.anchoring.tail_spec import (
    TailEntry,
    derive_tail,
    load_tail_spec,
    parse_tail_spec,
)

CoverageRule = Literal["auto", "margin", "nearest-seed"]
RULES = ("auto", "margin", "nearest-seed")
DEFAULT_SPEC_THRESHOLD = 0.5  # the `margin` rule's floor (its margins do the discriminating)
NEAREST_SEED_SPEC_THRESHOLD = 0.65  # the `nearest-seed` rule's threshold without a contrast set
DEFAULT_CONTRAST_THRESHOLD = 0.5
DEFAULT_JUDGE_TOP = 50
DEFAULT_TAIL_SIZE = 5
DEFAULT_MAX_SEEDS = 20
CONTROLS_PER_ENTRY = 5
MAX_CONTROL_YES = 0.2  # a judge saying yes to more of the negative controls than this is not trusted
MIN_CONTROLS = CONTROLS_PER_ENTRY  # fewer judged controls than this and the judge is uncalibrated: not trusted

POLICY_MEANING = {
    "both": "covered = LLM judge says yes AND embedding rule agrees (entries without seeds: LLM alone)",
    "either": "covered = LLM judge says yes OR embedding rule matches (entries without seeds: LLM alone)",
    "llm": "covered = LLM judge says yes (among the prefiltered candidates)",
    "embedding": "covered = embedding rule only; no LLM calls",
}


# the spec is in tail_spec.py, the embedding rules in tail_rules.py, the section models (TailAudit,
# TailEntryResult) in clusterdiv/reports/sections.py


# ---------------------------------------------------------------- the LLM judge


def _load_judge_prompt() -> Any:
    from clusterdiv.core.prompts import PromptTemplate, prompts_dir

    return PromptTemplate.load(prompts_dir() / "tail_membership.yaml")


async def _ajudge(pairs: list[tuple[int, int]], texts: list[str], entries: list[TailEntry], *,
                  settings: LLMSettings, cache: ModelCache, stats: CallStats,
                  progress: ProgressReporter | None = None) -> dict[tuple[int, int], str | None]:
    """'yes'/'no' per (example, entry) pair, None when the judge failed for that pair."""
    prompt = _load_judge_prompt()
    schema = prompt.output_model
    semaphore = asyncio.Semaphore(settings.concurrency)

    def clip(text: str) -> str:
        limit = settings.max_input_chars
        return text if len(text) <= limit else text[:limit] + " ..."

    # Identical texts are judged once per entry (a batch often repeats itself).
    unique: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for i, e in pairs:
        unique.setdefault((clip(texts[i]), e), []).append((i, e))

    def variables(key: tuple[str, int]) -> dict[str, str]:
        text, e = key
        return {"name": entries[e].name, "description": entries[e].description, "text": text}

    reporter = progress or NullProgress()

    async def one(key: tuple[str, int]) -> tuple[tuple[str, int], str | None]:
        async with semaphore:
            outcome = await agenerate_structured(prompt, variables(key), schema, model=settings, cache=cache,
                                                 stats=stats)
        reporter.advance("judge", cached=outcome.cached)
        return key, (str(outcome.value["member"]) if outcome.value else None)

    announce_calls(progress, "judge", prompt, [variables(k) for k in unique], schema, settings=settings, cache=cache,
                   stats=stats)
    with stage(progress, "judge", len(unique)):
        answers = dict(await asyncio.gather(*(one(k) for k in unique)))
    return {pair: answers[key] for key, group in unique.items() for pair in group}


# ---------------------------------------------------------------- calibrating the judge


def _pool_controls(k: int, need: int, pool_texts: list[str], pool_owner: np.ndarray, pool_sim: np.ndarray,
                   own_seeds: list[str]) -> list[int]:
    """The `need` texts outside the batch least like entry `k` that are known not to be members of it.

    A batch no larger than the judged top leaves no batch example outside it, and a judge that says yes
    to everything would then go unchallenged. Real examples of other labels (the reference) and the
    seeds of the spec's other entries are labelled non-members: an example of entry B is a negative
    control for entry A (as far as the spec's entries are distinct, which the spec asserts by naming them).
    """
    if need <= 0 or not pool_texts:
        return []
    own, seen, out = set(own_seeds), set(), []
    for j in np.argsort(pool_sim[:, k], kind="stable"):
        text = pool_texts[j]
        if pool_owner[j] == k or text in own or text in seen:
            continue
        seen.add(text)
        out.append(int(j))
        if len(out) == need:
            break
    return out


def _controls_text(from_batch: int, from_pool: int, pool_kind: str) -> str:
    parts = ([f"{from_batch} batch examples outside the judged top"] if from_batch else []) + (
        [f"{from_pool} drawn from {pool_kind}"] if from_pool else [])
    if not parts:
        return ("none: every batch example is among the judged top, and there is no reference and no seeds of "
                "other entries to draw them from")
    return f"{from_batch + from_pool} negative controls, the texts least like each entry: {', '.join(parts)}"


def _trust(yes: int, judged: int, drawn: int) -> tuple[bool, str]:
    """Whether the judge's yes may decide coverage, and why: an uncalibrated judge is never trusted."""
    if judged < MIN_CONTROLS:
        failed = f" (it failed on {drawn - judged})" if drawn > judged else ""
        return False, (f"uncalibrated: {judged} negative controls judged{failed}, at least {MIN_CONTROLS} needed "
                       "(a batch larger than --judge-top, a --reference, or seeds on more entries give them)")
    rate = yes / judged
    if rate > MAX_CONTROL_YES:
        return False, (f"it said yes to {yes} of {judged} negative controls ({rate:.0%} > {MAX_CONTROL_YES:.0%}): "
                       "it says yes to anything")
    return True, f"it said yes to {yes} of {judged} negative controls ({rate:.0%} <= {MAX_CONTROL_YES:.0%})"


def _decided_by(policy: str, agree: int, llm_alone: int, emb_alone: int, emb_unjudged: int) -> str:
    """Which signal decided an entry under `both`/`either`, true to the counts: agreement only when they agree."""
    if not llm_alone and not emb_alone:
        return f"{policy} (llm and embedding agree)"
    unjudged = f", {emb_unjudged} of them never judged: outside the judged top" if emb_unjudged else ""
    if policy == "both":
        if not emb_alone:
            how = f"the embedding rule decided (it rejected {llm_alone} llm yes"
        elif not llm_alone:
            how = f"the llm decided (it rejected {emb_alone} embedding matches{unjudged}"
        else:
            how = (f"each vetoed the other (the embedding rule rejected {llm_alone} llm yes, the llm rejected "
                   f"{emb_alone} embedding matches{unjudged}")
    elif not emb_alone:
        how = f"the llm decided (it added {llm_alone} the embedding rule did not match"
    elif not llm_alone:
        how = f"the embedding rule decided (it added {emb_alone} the llm did not say yes to{unjudged}"
    else:
        how = (f"each added its own ({llm_alone} llm yes the embedding rule did not match, {emb_alone} embedding "
               f"matches the llm did not say yes to{unjudged}")
    return f"{policy}, but llm and embedding disagree: {how}; both say yes to {agree})"


# ---------------------------------------------------------------- the audit


def _cohesion(vectors: np.ndarray) -> float | None:
    if vectors.shape[0] < 2:
        return None
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return float(np.median(sims.max(axis=1)))


def audit_tail(
    batch: Any,
    *,
    spec: Any = None,
    reference: Any = None,
    tail_size: int = DEFAULT_TAIL_SIZE,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    judge: JudgePolicy = "both",
    model: LLMSettings | str | None = None,
    embedding_model: str | Embedder = DEFAULT_EMBEDDING_MODEL,
    threshold: float | None = None,
    judge_top: int | None = DEFAULT_JUDGE_TOP,
    min_count: int = 1,
    min_share: float = 0.0,
    ids_per_entry: int = 50,
    seed: int = 0,
    rule: CoverageRule = "auto",
    cache: ModelCache | None = None,
    progress: ProgressReporter | None = None,
    load_options: dict[str, Any] | None = None,
    reference_load_options: dict[str, Any] | None = None,
) -> Report:
    """Count, per tail entry, the batch examples that cover it; flag entries below the minimums.

    `spec` is a tail spec (path to YAML/JSON, a `TailSpec`, or its dict/list form). Without a spec,
    `reference` (real data whose examples carry labels: pass `reference_load_options=
    {"label_field": ...}`) gives the tail: its `tail_size` rarest labels. See the module docstring
    for the signals, the calibration and the policies. `rule` is the embedding coverage rule: `margin`
    (the default for a spec), `nearest-seed` (the default with a contrast set from `reference`, and the
    rule before the margins, kept for comparison).
    """
    if judge not in POLICY_MEANING:
        raise InputError(f"unknown judge policy {judge!r}; choose from {', '.join(POLICY_MEANING)}")
    if rule not in RULES:
        raise InputError(f"unknown coverage rule {rule!r}; choose from {', '.join(RULES)}")
    if (spec is None) == (reference is None):
        raise InputError("give a tail spec (--tail) or labelled real data to derive one from "
                         "(--reference with --label-field), not both and not neither")
    if min_count < 0 or not 0.0 <= min_share <= 1.0:
        raise InputError("min_count must be >= 0 and min_share within 0..1")
    if judge_top is not None and judge_top < 1:
        raise InputError("judge_top must be >= 1 (or None to judge every example)")
    if tail_size < 1 or max_seeds < 1:
        raise InputError("tail_size and max_seeds must be >= 1")
    settings = model if isinstance(model, LLMSettings) else LLMSettings(**({"model": model} if model else {}))
    with RunContext(cache=cache, progress=progress) as run:
        with run.stage("load"):
            loaded = load_examples(batch, role="batch", load_options=load_options)
            contrast_texts: list[str] = []
            reference_counts: dict[str, int] = {}
            if spec is not None:
                tail = load_tail_spec(spec) if isinstance(spec, (str, Path)) else parse_tail_spec(spec)
                tail_source = f"spec: {spec}" if isinstance(spec, (str, Path)) else "spec: (in memory)"
            else:
                ref = load_examples(reference, role="reference", load_options=reference_load_options)
                tail, reference_counts, contrast = derive_tail(ref, tail_size=tail_size, max_seeds=max_seeds,
                                                               seed=seed)
                contrast_texts = [ref.examples[i].text for i in contrast]
                tail_source = (f"reference: {ref.name}, the {len(tail.entries)} rarest of "
                               f"{len(reference_counts)} labels (seeds: up to {max_seeds} real examples each; "
                               f"the other {len(contrast_texts)} real examples are contrast anchors)")

        entries = tail.entries
        texts = loaded.texts
        n, m = len(texts), len(entries)
        embedder = run.embedder(embedding_model)
        cache = run.cache
        seed_texts = [s for entry in entries for s in entry.seeds]
        with run.stage("embed"), stage(run.progress, "embed", n + len(seed_texts) + len(contrast_texts) + m) as advance:
            X = embed_texts(texts, model=embedder, cache=cache, progress=advance)
            seed_owner = np.array([k for k, entry in enumerate(entries) for _ in entry.seeds], dtype=np.int64)
            dim = X.shape[1]
            S = (embed_texts(seed_texts, model=embedder, cache=cache, progress=advance) if seed_texts
                 else np.zeros((0, dim), np.float32))
            C = (embed_texts(contrast_texts, model=embedder, cache=cache, progress=advance) if contrast_texts
                 else np.zeros((0, dim), np.float32))
            D = embed_texts([f"{e.name}: {e.description}" for e in entries], model=embedder, cache=cache,
                            progress=advance)

        with run.stage("extract"):
            chosen_rule = rule if rule != "auto" else ("nearest-seed" if contrast_texts else "margin")
            default_threshold = (DEFAULT_CONTRAST_THRESHOLD if contrast_texts else
                                 DEFAULT_SPEC_THRESHOLD if chosen_rule == "margin" else NEAREST_SEED_SPEC_THRESHOLD)
            base_threshold = default_threshold if threshold is None else threshold
            has_seeds = np.array([bool(e.seeds) for e in entries])
            thresholds = [e.threshold if e.threshold is not None else base_threshold for e in entries]
            sim, nearest_owner = entry_similarities(X, S, seed_owner, D, has_seeds, contrast=C)
            emb_member = embedding_members(X, sim, nearest_owner, has_seeds, thresholds, rule=chosen_rule,
                                           n_seeds=[len(e.seeds) for e in entries])

            # LLM judge on the prefiltered candidates.
            stats = run.stats
            llm_yes = np.zeros((n, m), dtype=bool)
            judged = np.zeros((n, m), dtype=bool)
            failed = np.zeros((n, m), dtype=bool)
            control_yes, control_judged = 0, 0
            judge_trusted = judge != "embedding"
            trust_reason: str | None = None
            controls_text: str | None = None
            if judge != "embedding":
                pool_texts = contrast_texts + seed_texts
                pool_owner = np.concatenate([np.full(len(contrast_texts), -1, dtype=np.int64), seed_owner])
                pool_sim = entry_similarities(np.vstack([C, S]), S, seed_owner, D, has_seeds)[0]
                pool_kind = "the reference's examples of other labels" if contrast_texts else (
                    "the seeds of the spec's other entries")
                pairs: list[tuple[int, int]] = []
                controls: list[tuple[int, int]] = []
                from_batch = from_pool = 0
                for k in range(m):
                    order = np.argsort(-sim[:, k], kind="stable")
                    top = order if judge_top is None else order[:judge_top]
                    pairs.extend((int(i), k) for i in top)
                    chosen = {int(i) for i in top}
                    batch_controls = [int(i) for i in order[::-1][:CONTROLS_PER_ENTRY] if int(i) not in chosen]
                    pool_controls = _pool_controls(k, CONTROLS_PER_ENTRY - len(batch_controls), pool_texts,
                                                   pool_owner, pool_sim, entries[k].seeds)
                    controls.extend((i, k) for i in batch_controls)
                    controls.extend((n + j, k) for j in pool_controls)  # indices past the batch: the pool's
                    from_batch, from_pool = from_batch + len(batch_controls), from_pool + len(pool_controls)
                controls_text = _controls_text(from_batch, from_pool, pool_kind)
                answers = run_sync(lambda: _ajudge(pairs + controls, texts + pool_texts, entries, settings=settings,
                                                   cache=cache, stats=stats, progress=run.progress))
                control_set = set(controls)
                for (i, k), answer in answers.items():
                    if (i, k) in control_set:
                        control_judged += answer is not None
                        control_yes += answer == "yes"
                        continue
                    judged[i, k] = True
                    if answer is None:
                        failed[i, k] = True
                    elif answer == "yes":
                        llm_yes[i, k] = True
                judge_trusted, trust_reason = _trust(control_yes, control_judged, from_batch + from_pool)

        results: list[TailEntryResult] = []
        notes: list[str] = []
        ids = [e.id for e in loaded.examples]
        if judge != "embedding" and not judge_trusted:
            notes.append(f"the LLM judge is not calibrated: {trust_reason}; coverage is decided by the embedding rule "
                         "alone, and entries without seeds are undecided")
        effective = judge if judge_trusted or judge == "embedding" else "embedding"
        for k, entry in enumerate(entries):
            undecided = effective != judge and not has_seeds[k]  # only the untrusted judge could have said
            if undecided:
                covered = np.zeros(n, dtype=bool)
                decided = "undecided: no seeds, and the LLM judge is not trusted"
            elif effective == "embedding":
                covered, decided = emb_member[:, k], ("embedding" if has_seeds[k]
                                                      else "embedding (description only: no seeds)")
            elif effective == "llm" or not has_seeds[k]:
                covered = llm_yes[:, k]
                decided = "llm" if judge == "llm" else "llm (no seeds: no embedding signal)"
            else:
                both_yes, llm_alone = llm_yes[:, k] & emb_member[:, k], llm_yes[:, k] & ~emb_member[:, k]
                emb_alone = emb_member[:, k] & ~llm_yes[:, k]
                covered = both_yes if effective == "both" else llm_yes[:, k] | emb_member[:, k]
                decided = _decided_by(effective, int(both_yes.sum()), int(llm_alone.sum()), int(emb_alone.sum()),
                                      int((emb_alone & ~judged[:, k]).sum()))
            idx = np.flatnonzero(covered)
            idx = idx[np.argsort(-sim[idx, k], kind="stable")]
            count = int(idx.size)
            share = count / n
            emb_signal = has_seeds[k] or judge == "embedding"
            # under the margin rule a match or two is what a neighbouring intent leaves behind, not evidence
            floor = MIN_EVIDENCE if (chosen_rule == "margin" and has_seeds[k] and effective != "llm") else 1
            flag: Literal["uncovered", "undecided", "under", "ok"] = (
                "undecided" if undecided else "uncovered" if count < floor
                else "under" if (count < min_count or share < min_share) else "ok")
            if 0 < count < floor:
                notes.append(f"{entry.name}: {count} matching example(s), below the evidence floor of {floor}: "
                             "flagged uncovered (stray matches next to a neighbouring intent look like this)")
            llm_signal = judge != "embedding"
            llm_only = np.flatnonzero(llm_yes[:, k] & ~emb_member[:, k]) if (llm_signal and emb_signal) else []
            emb_only = np.flatnonzero(emb_member[:, k] & ~llm_yes[:, k] & judged[:, k]) if (
                llm_signal and emb_signal) else []
            seed_vectors = S[seed_owner == k] if has_seeds[k] else np.zeros((0, dim), np.float32)
            cohesion = _cohesion(seed_vectors)
            if cohesion is not None and emb_signal and cohesion < thresholds[k] - 0.1:
                notes.append(f"{entry.name}: seeds are spread out (cohesion {cohesion:.2f} vs threshold "
                             f"{thresholds[k]:.2f}); the embedding signal will miss loosely-phrased members")
            results.append(TailEntryResult(
                name=entry.name, description=entry.description, flag=flag, count=count, share=share,
                decided_by=decided,
                llm_count=int(llm_yes[:, k].sum()) if llm_signal else None,
                embedding_count=int(emb_member[:, k].sum()) if emb_signal else None,
                judged=int(judged[:, k].sum()), judge_failures=int(failed[:, k].sum()),
                n_seeds=len(entry.seeds), threshold=thresholds[k] if emb_signal else None,
                seed_cohesion=cohesion, reference_count=reference_counts.get(entry.name),
                example_ids=[ids[i] for i in idx[:ids_per_entry]],
                llm_only_ids=[ids[i] for i in llm_only[:10]],
                embedding_only_ids=[ids[i] for i in emb_only[:10]],
            ))
        if int(failed.sum()):
            notes.append(f"the LLM judge failed on {int(failed.sum())} (example, entry) pairs; they count as 'no'")
        order = {"uncovered": 0, "undecided": 1, "under": 2, "ok": 3}
        results.sort(key=lambda r: (order[r.flag], r.count, r.name))

        if judge == "embedding":
            prefilter = "none: the LLM judge is off (--judge embedding)"
        elif judge_top is None:
            prefilter = f"none: every example judged for every entry ({n * m} judgements)"
        else:
            prefilter = (f"the LLM judged only the {min(judge_top, n)} examples most similar to each entry "
                         f"(seeds, or the description when an entry has none); the others count as 'no'")
        anchor_text = ("the seeds of every entry plus the contrast examples" if contrast_texts
                       else "the seeds of every entry")
        margins = f"; `{chosen_rule}` rule" + (f": {margin_rule_text()}" if chosen_rule == "margin" else "")
        calibration = (
            f"embedding rule: cosine to the entry's nearest seed >= threshold AND the example's nearest anchor "
            f"({anchor_text}) is a seed of that entry AND it is closer to the entry than to any batch example "
            f"less like the entry{margins}. Threshold "
            + (f"{threshold} (given)" if threshold is not None else
               f"{default_threshold}: fixed default for "
               + ("a labelled contrast set (the nearest-anchor rule discriminates)" if contrast_texts
                  else "seeds without a contrast set"))
            + "; per-entry `threshold` in the spec overrides it"
        )
        section = TailAudit(
            tail_source=tail_source, n_batch=n, n_entries=m,
            n_uncovered=sum(r.flag == "uncovered" for r in results),
            n_under=sum(r.flag == "under" for r in results),
            uncovered=[r.name for r in results if r.flag == "uncovered"],
            under=[r.name for r in results if r.flag == "under"],
            n_undecided=sum(r.flag == "undecided" for r in results),
            undecided=[r.name for r in results if r.flag == "undecided"],
            policy=judge, policy_meaning=POLICY_MEANING[judge],
            judge_model=None if judge == "embedding" else settings.model,
            embedding_model=embedder.spec.name, calibration=calibration, prefilter=prefilter,
            min_count=min_count, min_share=min_share, coverage_rule=chosen_rule,
            evidence_floor=MIN_EVIDENCE if chosen_rule == "margin" and effective != "llm" else 1,
            judgements=int(judged.sum()), judgements_without_prefilter=n * m,
            llm_calls=stats.calls, llm_cache_hits=stats.cache_hits, llm_failures=stats.failures,
            judge_control_yes_rate=(control_yes / control_judged) if control_judged else None,
            judge_trusted=judge_trusted if judge != "embedding" else None,
            judge_trust_reason=trust_reason, judge_controls=controls_text,
            notes=notes, entries=results,
        )
        return Report(command="audit-tail", source=loaded.source, content_hash=loaded.content_hash,
                      n_input=n, skipped=loaded.skipped, tail_audit=section,
                      timings=run.finish())

