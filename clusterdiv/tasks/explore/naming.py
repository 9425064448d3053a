"""Stage (on request): LLM names for clusters, asked contrastively, grounded, with an extractive fallback.

The explorer's default names are extractive (`modes.names`: a mode's c-TF-IDF words and its most
central member), because a small model's names mislead ("book hotel" -> "hotel reviews"). This
module is the opt-in alternative (`explore(names="llm")`, or a configured `naming_model`).

A cluster id ("mode 7") means nothing to the person deciding what their generator lost, and the
criteria summary ("intent: set alarm (5), wake up (2); topic: ...") is long. One LLM call per
cluster asks for a name and a sentence (`prompts/name_cluster.yaml`), showing the members closest
to the cluster's centroid and, as contrast, examples of the two nearest clusters: without the
contrast, neighbouring clusters ("set alarm" / "set timer") tend to get the same generic name.

Calls go through `agenerate_structured`, so they are cached, retried and bounded like extraction.
When the model still fails for a cluster, or names it with a word that occurs in none of its
members (texts and criteria values: "timezone" -> "dumbbell"), the cluster keeps its extractive name
with `named_by="terms"` and the recorded reason in `naming_error`: a name is never invented
silently, and the page shows which names came from where.

A description the model did answer is still checked for being about the cluster (`grounded`): a
135M model often writes a generic ramble ("Credit card fraud is a serious issue that can happen to
anyone...") that names nothing in the cluster. The check is lexical and contrastive: the
description's content words must occur among the cluster's members (texts and criteria values),
and the cluster must be among the `GROUNDING_RANK` clusters whose members share most of them (each
word weighed by the share of a cluster's members that contain it). A description that fails is
replaced by the criteria description (the extractive one without criteria), the LLM's name is kept,
and `description_error` says why.

Everything that picks examples is deterministic: members are ordered by cosine to the centroid,
ties by example id then input position, and neighbours by centroid cosine, ties by cluster id.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from clusterdiv.core.aio import run_sync
from clusterdiv.core.cache import ModelCache
from clusterdiv.core.progress import NullProgress, ProgressReporter
from clusterdiv.core.prompts import PromptTemplate, prompts_dir
from clusterdiv.llm.structured import CallStats, LLMSettings, agenerate_structured, announce_calls
from clusterdiv.modes.cluster import NOISE
from clusterdiv.modes.names import ModeName, central_order, mode_centroids, mode_names
from clusterdiv.modes.represent import criteria_text
from clusterdiv.tasks.explore.model import Source

MEMBERS_SHOWN = 8  # members of the cluster in the prompt
NEIGHBOURS = 2  # nearest other clusters shown as contrast
NEIGHBOUR_EXAMPLES = 4  # examples per neighbour
PROMPT_TEXT_CHARS = 160  # per example: 16 examples must fit a 2,048-token context with room to answer
FALLBACK_NAME_CHARS = 40
NAME_LIMIT = 100  # clusters named by the LLM, largest first; a page of thousands of singletons needs no prose
GROUNDING_RANK = NEIGHBOURS + 1  # own cluster within the top clusters by shared words (near twins tie)


class ClusterMember(BaseModel):
    """One clustered example as the naming stage sees it (only successful extractions are members)."""

    example_id: str
    source: Source = "batch"
    cluster: int
    text: str
    criteria: dict[str, str]


class ClusterName(BaseModel):
    """The name of one cluster and where it came from."""

    cluster_id: int
    name: str
    description: str
    named_by: Literal["llm", "terms", "criteria"]  # "criteria": documents written before extractive names
    naming_error: str | None = None
    description_error: str | None = None  # the LLM's description was replaced (not grounded)


def load_naming_prompt() -> PromptTemplate:
    return PromptTemplate.load(prompts_dir() / "name_cluster.yaml")


# ---------------------------------------------------------------- geometry


def centroids(members: Sequence[ClusterMember], vectors: np.ndarray) -> dict[int, np.ndarray]:
    """Unit-norm mean vector per cluster (`modes.names.mode_centroids` over the members)."""
    return mode_centroids([m.cluster for m in members], vectors)


def representatives(members: Sequence[ClusterMember], vectors: np.ndarray,
                    centres: dict[int, np.ndarray]) -> dict[int, list[int]]:
    """Member positions per cluster, most central first (`modes.names.central_order`)."""
    return central_order([m.cluster for m in members], vectors, [m.example_id for m in members], centres)


def member_names(members: Sequence[ClusterMember], vectors: np.ndarray) -> dict[int, ModeName]:
    """The extractive names of the members' clusters (`modes.names`)."""
    return mode_names([m.text for m in members], [m.cluster for m in members], vectors,
                      [m.example_id for m in members])


def terms_names(extractive: dict[int, ModeName], *, reason: str | None = None) -> list[ClusterName]:
    """The extractive names as ClusterNames, in cluster-id order: the explorer's default names."""
    return [ClusterName(cluster_id=c, name=n.name, description=n.description, named_by="terms", naming_error=reason)
            for c, n in sorted(extractive.items())]


def nearest_clusters(centres: dict[int, np.ndarray], *, k: int = NEIGHBOURS) -> dict[int, list[int]]:
    """The `k` other clusters whose centroids are most similar (cosine), ties by cluster id."""
    ids = sorted(centres)
    if not ids:
        return {}
    matrix = np.vstack([centres[c] for c in ids]).astype(np.float64)
    sims = np.round(matrix @ matrix.T, 6)  # rounded so float noise cannot reorder near-ties
    np.fill_diagonal(sims, -np.inf)
    order_ids = np.asarray(ids)
    return {c: [int(order_ids[j]) for j in np.lexsort((order_ids, -sims[row]))[:min(k, len(ids) - 1)]]
            for row, c in enumerate(ids)}


# ---------------------------------------------------------------- names


def _clip(text: str) -> str:
    """One example as prompt data: shortened, and unable to close the <<< >>> delimiters early."""
    text = " ".join(text.split())
    text = text if len(text) <= PROMPT_TEXT_CHARS else text[:PROMPT_TEXT_CHARS] + " ..."
    while "<<<" in text or ">>>" in text:  # a loop: one pass over "<<<<" would leave "<<<" behind
        text = text.replace("<<<", "<< <").replace(">>>", "> >>")
    return text


def _shown(member: ClusterMember, fields: Sequence[str]) -> dict[str, str]:
    return {"text": _clip(member.text), "criteria": criteria_text(member.criteria, fields)}


def criteria_name(members: Sequence[ClusterMember], fields: Sequence[str]) -> tuple[str, str]:
    """Name and description from the most common value of each clustered criterion (the fallback)."""
    n = len(members)
    tops: list[tuple[str, str, int]] = []
    for field in fields:
        counts = Counter(m.criteria.get(field, "") for m in members if m.criteria.get(field))
        if counts:
            value, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            tops.append((field, value, count))
    if not tops:
        return "unnamed cluster", ""
    name = " / ".join(dict.fromkeys(v for _, v, _ in tops))
    if len(name) > FALLBACK_NAME_CHARS:
        name = name[: FALLBACK_NAME_CHARS - 3].rstrip() + "..."
    description = "Most common criteria: " + "; ".join(f"{f}: {v} ({c} of {n})" for f, v, c in tops) + "."
    return name, description


def naming_inputs(members: Sequence[ClusterMember], vectors: np.ndarray, *, fields: Sequence[str]
                  ) -> dict[int, dict[str, list[dict[str, str]]]]:
    """The prompt variables per cluster: its most central members, then the nearest clusters' ones.

    `{"members": [...], "neighbours": [...]}`, each a list of `{"text", "criteria"}`: up to
    MEMBERS_SHOWN members and NEIGHBOUR_EXAMPLES examples from each of the NEIGHBOURS nearest
    clusters. These variables are the `input` part of the cache key.
    """
    vectors = np.asarray(vectors, dtype=np.float32).reshape(len(members), -1)
    centres = centroids(members, vectors)
    reps = representatives(members, vectors, centres)
    near = nearest_clusters(centres)
    return {
        c: {
            "members": [_shown(members[i], fields) for i in reps[c][:MEMBERS_SHOWN]],
            "neighbours": [_shown(members[i], fields) for other in near[c] for i in reps[other][:NEIGHBOUR_EXAMPLES]],
        }
        for c in centres
    }


async def aname_clusters(
    members: Sequence[ClusterMember],
    vectors: np.ndarray,
    *,
    fields: Sequence[str],
    model: LLMSettings,
    cache: ModelCache,
    prompt: PromptTemplate | None = None,
    stats: CallStats | None = None,
    progress: ProgressReporter | None = None,
    limit: int | None = NAME_LIMIT,
    extractive: dict[int, ModeName] | None = None,
) -> list[ClusterName]:
    """One ClusterName per cluster (noise excluded), in cluster-id order.

    `vectors` are the members' criteria embeddings, row-aligned with `members` (unit-norm, so a dot
    product is a cosine). `fields` are the clustered criteria, shown beside each example and used by
    the fallback name. Only the `limit` largest clusters (members, ties by id; None = all) are sent
    to the LLM: naming costs one call per cluster, and a large set can have thousands of tiny ones.
    The others keep their extractive name (`extractive`, by default computed from the members), and
    their `naming_error` says so; so does a cluster whose LLM name is not grounded in its members.
    """
    prompt = prompt or load_naming_prompt()
    stats = stats if stats is not None else CallStats()
    progress = progress or NullProgress()
    schema = prompt.output_model
    inputs = naming_inputs(members, vectors, fields=fields)
    by_cluster: dict[int, list[ClusterMember]] = {}
    for m in members:
        by_cluster.setdefault(m.cluster, []).append(m)
    largest = sorted(inputs, key=lambda c: (-len(by_cluster[c]), c))
    asked = set(largest if limit is None else largest[:limit])
    grounding = Grounding(members, fields)
    extractive = extractive if extractive is not None else member_names(members, vectors)

    def fallback(cluster: int, problem: str) -> ClusterName:
        named = extractive[cluster]
        return ClusterName(cluster_id=cluster, name=named.name, description=described(cluster),
                           named_by="terms", naming_error=problem)

    def described(cluster: int) -> str:
        """The description that replaces the LLM's: the criteria's, or the extractive one without criteria."""
        return criteria_name(by_cluster[cluster], fields)[1] or extractive[cluster].description

    semaphore = asyncio.Semaphore(model.concurrency)
    announce_calls(progress, "naming", prompt, [inputs[c] for c in sorted(asked)], schema, settings=model,
                   cache=cache, stats=stats)
    progress.start("name", len(asked))

    async def one(cluster: int) -> ClusterName:
        if cluster not in asked:
            return fallback(cluster, f"not asked: only the {limit} largest clusters are named by the LLM")
        async with semaphore:
            outcome = await agenerate_structured(prompt, inputs[cluster], schema, model=model, cache=cache,
                                                 stats=stats)
        progress.advance("name", cached=outcome.cached)
        problem = outcome.error or "unknown naming failure"
        if outcome.value is not None:
            problem = suspect_answer(outcome.value, prompt) or grounding.check_name(cluster, str(outcome.value["name"]))
            if problem is None:
                description = str(outcome.value["description"])
                ungrounded = grounding.check(cluster, description)
                if ungrounded is not None:
                    description = described(cluster)
                return ClusterName(cluster_id=cluster, name=str(outcome.value["name"]),
                                   description=description, named_by="llm", description_error=ungrounded)
        return fallback(cluster, problem)

    try:
        return list(await asyncio.gather(*(one(c) for c in inputs)))
    finally:
        progress.finish("name")


def name_clusters(members: Sequence[ClusterMember], vectors: np.ndarray, *, fields: Sequence[str],
                  model: LLMSettings, cache: ModelCache, prompt: PromptTemplate | None = None,
                  stats: CallStats | None = None, progress: ProgressReporter | None = None,
                  limit: int | None = NAME_LIMIT, extractive: dict[int, ModeName] | None = None) -> list[ClusterName]:
    """Synchronous wrapper of `aname_clusters`; works inside a running event loop too (Jupyter)."""
    return run_sync(lambda: aname_clusters(members, vectors, fields=fields, model=model, cache=cache,
                                           prompt=prompt, stats=stats, progress=progress, limit=limit,
                                           extractive=extractive))


_WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = frozenset(
    "a an the and or but nor of to in on at for with by from as is are was were be been being am this that "
    "these those it its they them their there here can could will would may might must should shall do does "
    "did has have had not no so such than then too very also just any all some each every other into onto "
    "about over under out up down off".split())


def content_words(text: str) -> set[str]:
    """Lower-case words of 2+ characters, function words dropped, a plural 's' stripped ("alarms" = "alarm")."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if len(w) < 2 or w in _FUNCTION_WORDS:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


class Grounding:
    """Whether a description is about its cluster's members (see the module docstring).

    Built once per naming run: for every cluster (noise excluded), the share of its members whose
    text or criteria values contain each content word.
    """

    def __init__(self, members: Sequence[ClusterMember], fields: Sequence[str], *, rank: int = GROUNDING_RANK):
        self.rank = rank
        counts: dict[int, Counter[str]] = {}
        sizes: Counter[int] = Counter()
        for m in members:
            if m.cluster == NOISE:
                continue
            words = content_words(m.text)
            for field in fields:
                words |= content_words(m.criteria.get(field, ""))
            counts.setdefault(m.cluster, Counter()).update(words)
            sizes[m.cluster] += 1
        self.frequency = {c: {w: n / sizes[c] for w, n in cnt.items()} for c, cnt in counts.items()}

    def score(self, cluster: int, words: set[str]) -> float:
        freq = self.frequency.get(cluster, {})
        return sum(freq.get(w, 0.0) for w in words)

    def check_name(self, cluster: int, name: str) -> str | None:
        """None when every content word of the name occurs among the cluster's members, else why not."""
        freq = self.frequency.get(cluster, {})
        absent = sorted(w for w in content_words(name) if freq.get(w, 0.0) <= 0)
        if absent:
            return f"the LLM's name {name!r} has words in none of the cluster's members: {', '.join(absent)}"
        return None

    def check(self, cluster: int, description: str) -> str | None:
        """None when grounded, else why not (the reason shown on the page)."""
        words = content_words(description)
        own = self.score(cluster, words)
        if own <= 0:
            return "the description shares no word with the cluster's members"
        better = sum(1 for c in self.frequency if c != cluster and self.score(c, words) > own + 1e-9)
        if better >= self.rank:
            return (f"the description fits {better} other clusters' members better than this one's "
                    f"(it is about other examples)")
        return None


_REPEAT = re.compile(r"\b(\w+)(?:\W+\1\b){3,}", re.IGNORECASE)


def suspect_answer(value: dict[str, object], prompt: PromptTemplate) -> str | None:
    """Why a schema-valid name should not be trusted, or None.

    A small model under constrained decoding often copies the worked example's answer verbatim or
    loops on one word ("plan plan plan ..."); both pass the schema but name nothing. Such answers
    are treated like invalid ones: the cluster falls back to its criteria, with this reason.
    """
    name = str(value.get("name", "")).strip().lower()
    copied = {str(shot.output.get("name", "")).strip().lower() for shot in prompt.spec.few_shot}
    if name in copied:
        return f"the model copied the prompt's worked example ({name!r})"
    for field in ("name", "description"):
        if _REPEAT.search(str(value.get(field, ""))):
            return f"the model's {field} repeats one word ({str(value.get(field))[:40]!r}...)"
    return None
