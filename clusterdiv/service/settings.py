"""Service configuration: every limit a shared server needs, with defaults safe on a laptop."""

from __future__ import annotations

import ipaddress
import os

from pydantic import BaseModel, ConfigDict, Field

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
    ray_address: str | None = None  # the Ray cluster of jobs with engine "ray"; None = one started in this process
    max_job_attempts: int = Field(default=3, ge=1)  # a job interrupted this often is marked failed
    stale_after_s: float = Field(default=60.0, gt=0)  # heartbeat age after which another host's job is stale
    poll_interval_s: float = Field(default=1.0, gt=0)
    # Host header checks (DNS rebinding): the address bound, plus these names; None = not checked.
    bind_host: str | None = None
    allowed_hosts: list[str] = Field(default_factory=list)
    body_idle_timeout_s: float = Field(default=30.0, gt=0)  # 408 when a body stalls this long
    body_total_timeout_s: float = Field(default=300.0, gt=0)  # 408 when a body takes longer in all

    @classmethod
    def from_env(cls, **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {"token": os.environ.get(TOKEN_ENV_VAR) or None}
        hosts = [h.strip() for h in os.environ.get(ALLOWED_HOSTS_ENV_VAR, "").split(",") if h.strip()]
        if hosts:
            values["allowed_hosts"] = hosts
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def models(self) -> list[str]:
        return [self.default_model, *[m for m in self.allowed_models if m != self.default_model]]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
