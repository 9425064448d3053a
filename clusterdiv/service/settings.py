"""Service configuration: every limit a shared server needs, with defaults safe on a laptop."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clusterdiv.engine import EngineName
from clusterdiv.llm import DEFAULT_LLM

TOKEN_ENV_VAR = "CLUSTERDIV_API_TOKEN"
ALLOWED_HOSTS_ENV_VAR = "CLUSTERDIV_ALLOWED_HOSTS"


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db: str | None = None  # history/jobs database (path or URL); None = $CLUSTERDIV_HISTORY_DB or default
    cache_dir: str | None = None  # model cache; None = $CLUSTERDIV_CACHE_DIR or the user cache
    token: str | None = Field(default=None, repr=False)  # bearer token; None = no auth (loopback only)
    workers: int = Field(default=2, ge=1, le=64)  # jobs executed at once
    llm_concurrency: int = Field(default=4, ge=1, le=256)  # LLM calls in flight per job
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_examples_per_job: int = Field(default=5000, ge=1)  # all texts of a job, reference included
    default_model: str = DEFAULT_LLM
    default_representation: str | None = None  # jobs that name none; None = the library's validated default
    # Models a request may ask for. A request can never name an arbitrary model or endpoint:
    # that would let any client spend the server's API keys or reach internal hosts.
    allowed_models: list[str] = Field(default_factory=list)
    # The Ray cluster every job runs its model stages on; None = in the worker. The server never starts
    # Ray itself: Ray's processes started from a job's thread are killed when that thread ends (they
    # are bound to their parent), and a minute later Ray's client ends the whole server.
    ray_address: str | None = None
    max_job_attempts: int = Field(default=3, ge=1)  # a job interrupted this often is marked failed
    stale_after_s: float = Field(default=60.0, gt=0)  # heartbeat age after which another host's job is stale
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Host header checks (DNS rebinding): the address bound, plus these names; None = not checked.
    bind_host: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    body_idle_timeout_s: float = Field(default=30.0, gt=0)  # 408 when a body stalls this long
    body_total_timeout_s: float = Field(default=300.0, gt=0)  # 408 when a body takes longer in all
    header_timeout_s: float = Field(default=10.0, gt=0)  # 408 when request headers take longer

    @field_validator("token")
    @classmethod
    def _no_blank_token(cls, value: str | None) -> str | None:
        """A blank token is no token (a client could never present it: HTTP strips header whitespace)."""
        if value is None or not value.strip():
            return None
        return value.strip()

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {"token": os.environ.get(TOKEN_ENV_VAR) or None}
        hosts = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV_VAR, "").split(",") if h.strip()]
        if hosts:
            values["allowed_hosts"] = hosts
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def engine(self) -> EngineName:
        """The engine of every job on this server: the one it was started with."""
        return "ray" if self.ray_address else "local"

    def engine_settings(self) -> dict[str, Any]:
        return {"name": self.engine, "address": self.ray_address}

    def models(self) -> list[str]:
        return [self.default_model, *[m for m in self.allowed_models if m != self.default_model]]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
