"""The ``api`` section of the settings (``[api]`` in TOML, ``ARBX_API__...`` variables)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ApiSettings(BaseModel):
    """Where the API listens, and how it judges the engine's heartbeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    heartbeat_max_age_s: float = Field(30.0, gt=0)
    poll_interval: float = Field(0.5, gt=0, le=60)
    serve_in_run: bool = False  # `arbx run` also serves the API (and dashboard) in its loop
    # After SIGTERM, /readyz answers 503 this long while the API still serves, so that a load
    # balancer (a Kubernetes Service) stops sending before connections are refused.
    drain_seconds: float = Field(0.0, ge=0, le=300)
