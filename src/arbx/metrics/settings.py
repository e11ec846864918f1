"""The ``metrics`` section of the settings (``[metrics]`` in TOML, ``ARBX_METRICS__...``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsSettings(BaseModel):
    """Where the engine serves ``/metrics`` and ``/healthz``; port 0 picks any free port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    heartbeat_max_age_s: float = Field(30.0, gt=0)  # /healthz turns 503 past this age
