"""The embedding rules of the tail audit: when does a batch example count as an instance of an entry?

Kept apart from the audit (tail.py) because they are the part that is tuned and evaluated on its own
(eval/tail_within_eval.py calls them directly on saved vectors): each takes the batch's vectors and
the entries' similarities as arrays and returns arrays, with no model, cache or report involved.
See tail.py's docstring for why each test exists.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from clusterdiv.tasks.anchoring._common import CHUNK_ROWS

# The `margin` rule (spec without a contrast set), chosen on the CLINC150 domains only and reported out of
# sample on HWU64 and HINT3 (eval/tail_within_eval.py, eval/results/tail_within.md):
SEED_MARGIN = 0.15  # nearest seed of the entry beats the nearest seed of any other entry by this much
NEIGHBOUR_RANK = 0  # ... and is no further than the example's nearest batch neighbour number this (0: off)
NEIGHBOUR_MARGIN = 0.0  # ... less this margin
RANK_SHARE = 0.25  # ... and ranks among the example's share x |candidates| nearest batch neighbours (0: off),
RANK_SEEDS = 3  # at this many seeds (the evaluation's); with s seeds the share is scaled by (3 + 1) / (s + 1)
MIN_EVIDENCE = 2  # fewer matches than this is no evidence the entry is present: it is flagged uncovered


def _chunks(rows: np.ndarray, n: int) -> list[np.ndarray]:
    """Row groups whose similarity block to the whole batch stays near 4M floats."""
    size = max(1, (1 << 22) // max(n, 1))
    return [rows[i:i + size] for i in range(0, rows.size, size)]


def closer_than_batch_neighbours(X: np.ndarray, sim: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidates that are closer to the entry than to any non-candidate batch example less like it.

    The batch's own neighbourhood is the contrast a spec cannot give: when an entry is missing, the
    few examples that pass the similarity rule belong to a neighbouring intent, and each has a
    sibling of that intent (failing the rule) closer to it than the entry's seeds are; a real member
    is closer to the entry's seeds than to the unrelated examples around it. Other candidates are
    not contrast (members of one entry are close to each other). `sim` is each example's similarity
    to the entry; only candidates are checked, one row of similarities each: candidates x batch.
    """
    keep = candidates.copy()
    rows = np.flatnonzero(candidates)
    for chunk in _chunks(rows, X.shape[0]):
        block = X[chunk] @ X.T
        contrast = (sim[None, :] < sim[chunk][:, None]) & ~candidates[None, :]
        nearest_contrast = np.where(contrast, block, -np.inf).max(axis=1)
        keep[chunk] = ~(nearest_contrast > sim[chunk])
    return keep


def within_batch_rank(X: np.ndarray, sim: np.ndarray, candidates: np.ndarray, *, rank: int = NEIGHBOUR_RANK,
                      margin: float = NEIGHBOUR_MARGIN) -> np.ndarray:
    """Candidates at least as close to the entry's nearest seed as to their `rank`-th nearest batch neighbour.

    A member of an entry that is present sits among its siblings, and the entry's seeds are siblings
    too, so its nearest seed is about as close as its few nearest batch neighbours. An example of a
    neighbouring intent that stays in the batch has a handful of its own siblings closer to it than
    the missing entry's seeds: what "closer to this entry than to anything else in its batch
    neighbourhood" means when every example of the entry is gone. Unlike `closer_than_batch_neighbours`
    the neighbours include other candidates, so a tight group of a neighbouring intent cannot vouch for
    itself. Only candidates are checked: candidates x batch similarities, in chunks.
    """
    keep = candidates.copy()
    rows = np.flatnonzero(candidates)
    if X.shape[0] <= rank or rows.size == 0:
        return keep
    for chunk in _chunks(rows, X.shape[0]):
        block = X[chunk] @ X.T
        block[np.arange(chunk.size), chunk] = -np.inf
        kth = -np.partition(-block, rank - 1, axis=1)[:, rank - 1]
        keep[chunk] = sim[chunk] >= kth - margin
    return keep


def entry_similarities(X: np.ndarray, S: np.ndarray, seed_owner: np.ndarray, D: np.ndarray, has_seeds: np.ndarray,
                       *, contrast: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per (example, entry) the cosine to the entry's nearest seed (its description when it has none),
    and per example the owner of its nearest anchor (seeds, then contrast examples: owner -1)."""
    n, m = X.shape[0], D.shape[0]
    C = contrast if contrast is not None else np.zeros((0, X.shape[1]), np.float32)
    sim = np.empty((n, m), dtype=np.float32)
    nearest_owner = np.full(n, -2, dtype=np.int64)
    anchors = np.vstack([S, C]) if C.shape[0] else S
    owners = np.concatenate([seed_owner, np.full(C.shape[0], -1, dtype=np.int64)])
    for start in range(0, n, CHUNK_ROWS):
        rows = X[start:start + CHUNK_ROWS]
        if anchors.shape[0]:
            block = rows @ anchors.T
            nearest_owner[start:start + rows.shape[0]] = owners[block.argmax(axis=1)]
            seed_block = block[:, : S.shape[0]]
        desc_block = rows @ D.T
        for k in range(m):
            if has_seeds[k]:
                sim[start:start + rows.shape[0], k] = seed_block[:, seed_owner == k].max(axis=1)
            else:
                sim[start:start + rows.shape[0], k] = desc_block[:, k]
    return sim, nearest_owner


def embedding_members(X: np.ndarray, sim: np.ndarray, nearest_owner: np.ndarray, has_seeds: np.ndarray,
                      thresholds: list[float], *, rule: Literal["margin", "nearest-seed"] = "margin",
                      seed_margin: float = SEED_MARGIN, neighbour_rank: int = NEIGHBOUR_RANK,
                      neighbour_margin: float = NEIGHBOUR_MARGIN, rank_share: float = RANK_SHARE,
                      n_seeds: list[int] | None = None) -> np.ndarray:
    """(example, entry) -> the embedding rule matches; the settings are parameters so that the
    evaluation tunes exactly this code (eval/tail_within_eval.py --tune), not a copy of it.

    The rank share was tuned with `RANK_SEEDS` seeds per entry. The nearest of s seeds exchangeable with
    |G| members ranks at about |G| / (s + 1), so the share is scaled by (RANK_SEEDS + 1) / (s + 1): the
    same test ("no later than the expected rank") for an entry with one seed or twenty.
    """
    n, m = sim.shape
    member = np.zeros((n, m), dtype=bool)
    seeded = np.flatnonzero(has_seeds)
    for k in range(m):
        if has_seeds[k]:
            member[:, k] = (sim[:, k] >= thresholds[k]) & (nearest_owner == k)
            if rule == "margin" and seeded.size > 1 and seed_margin > 0:
                # the nearest seed of any other entry must be clearly further away
                others = sim[:, seeded[seeded != k]].max(axis=1)
                member[:, k] &= sim[:, k] - others >= seed_margin
        else:
            member[:, k] = sim[:, k] >= thresholds[k]  # description only; used under `embedding`
        base = member[:, k].copy()
        member[:, k] &= closer_than_batch_neighbours(X, sim[:, k], base)
        if rule == "margin" and has_seeds[k] and neighbour_rank > 0:
            member[:, k] &= within_batch_rank(X, sim[:, k], base, rank=neighbour_rank, margin=neighbour_margin)
        if rule == "margin" and has_seeds[k] and rank_share > 0:
            seeds_k = RANK_SEEDS if n_seeds is None else n_seeds[k]
            member[:, k] &= seed_rank_share(X, sim[:, k], base, share=rank_share * (RANK_SEEDS + 1) / (seeds_k + 1))
    return member


def seed_rank_share(X: np.ndarray, sim: np.ndarray, candidates: np.ndarray, *, share: float) -> np.ndarray:
    """Candidates whose nearest seed of the entry ranks among their `share` x |candidates| nearest batch neighbours.

    An exchangeability test between the seeds and the examples that match them. When the entry is
    present its members are the candidates, and the seeds are members too: the nearest of a few seeds
    ranks early among a member's neighbours, at about |members| / (seeds + 1). When every example of the
    entry is gone, the candidates are the edge of a neighbouring intent that stays, and that intent's
    siblings all rank before the missing entry's seeds. The allowed rank grows with the number of
    candidates, so a large present entry is not penalised for having many members closer than 3 seeds.
    """
    keep = candidates.copy()
    rows = np.flatnonzero(candidates)
    limit = share * rows.size
    for chunk in _chunks(rows, X.shape[0]):
        block = X[chunk] @ X.T
        block[np.arange(chunk.size), chunk] = -np.inf
        keep[chunk] = (block > sim[chunk][:, None]).sum(axis=1) <= limit
    return keep


def margin_rule_text() -> str:
    """The `margin` rule's tests in words, as the report's calibration line and the evaluation state them."""
    tests = [f"the entry's nearest seed beats every other entry's nearest seed by >= {SEED_MARGIN}"]
    if NEIGHBOUR_RANK:
        tests.append(f"is no further than the example's nearest batch neighbour number {NEIGHBOUR_RANK} "
                     f"less {NEIGHBOUR_MARGIN}")
    if RANK_SHARE:
        tests.append(f"ranks among the example's {RANK_SHARE:g} x |candidates| nearest batch neighbours (at "
                     f"{RANK_SEEDS} seeds; x ({RANK_SEEDS} + 1) / (seeds + 1) otherwise)")
    return (" AND ".join(tests) + f"; an entry with fewer than {MIN_EVIDENCE} matches is uncovered (settings "
            "chosen on the CLINC150 domains, reported out of sample on HWU64 and HINT3)")
