"""What the collapsed-mode explorer shows, as one pydantic document.

The service stores it with a finished job and the CLI exports it as HTML, so the page never
recomputes anything: every number on it is one a report already committed to.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from clusterdiv.reports.report import Failures, Report, ValueCount
from clusterdiv.tasks.explore.downloads import Downloads

Source = Literal["batch", "reference"]
ShareFlag = Literal["over", "under", "missing", "untestable", "batch_only"]  # modes.shares


class MapPoint(BaseModel):
    """One example on the 2-D map."""

    example_id: str
    source: Source = "batch"
    cluster: int  # -1 = noise (UMAP + HDBSCAN only)
    x: float
    y: float
    text: str  # truncated for display; the full text stays with the user's data
    criteria: dict[str, str] | None = None


class NamedCluster(BaseModel):
    """One cluster of the explorer's clustering, named and compared with the reference."""

    cluster_id: int
    size: int  # batch members
    share: float  # of the batch
    reference_size: int | None = None
    reference_share: float | None = None
    flag: ShareFlag | None = None  # only with a reference
    name: str
    description: str = ""
    # "terms": extractive (modes.names; the default, or the LLM's name was refused: `naming_error` says
    # why); "llm": asked for and grounded; "criteria": documents written before extractive names
    named_by: Literal["terms", "llm", "criteria"]
    naming_error: str | None = None
    # The LLM's description was not about the cluster's members and was replaced (naming.Grounding);
    # left out of the JSON when None, so documents without a replacement read as before.
    description_error: str | None = Field(default=None, exclude_if=lambda v: v is None)
    criteria_summary: str = ""
    example_ids: list[str] = Field(default_factory=list)
    # Where the page writes the name on the map: the median of the cluster's points (batch and reference).
    label_x: float | None = None
    label_y: float | None = None
    # With --label-field: the cluster's top gold labels and purity (`modes.stages.label_mix`); left
    # out of the JSON without labels.
    labels: list[ValueCount] | None = Field(default=None, exclude_if=lambda v: v is None)
    label_purity: float | None = Field(default=None, exclude_if=lambda v: v is None)


class Exploration(BaseModel):
    """Everything the explorer page needs for one scored batch (optionally against a reference)."""

    title: str
    report: Report  # the ordinary `score` report of the batch alone
    clustering_method: str  # of the explorer's clustering (batch + reference together when given)
    map_method: str  # e.g. "umap" or "pca" (tiny sets)
    map_caption: str = ""  # what the map is a picture of, true to the run's representation
    points: list[MapPoint]
    clusters: list[NamedCluster]  # largest first
    has_reference: bool = False
    naming_model: str | None = None
    naming_prompt_sha256: str | None = None
    # Reference examples whose extraction failed: not on the map and in no share, but counted here
    # (the batch's own failures are in `report.failed`).
    reference_failed: Failures | None = None
    reference_source: str | None = None
    # The page's downloads (a diverse subset; real seeds with a reference), when asked for
    # (`explore(downloads=True)`); left out of the JSON when None.
    downloads: Downloads | None = Field(default=None, exclude_if=lambda v: v is None)
