"""The ``api`` section of the settings (``[api]`` in TOML, ``ARBX_API__...`` variables)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from arbx.api.admission import AdmissionBounds


class ApiSettings(BaseModel):
    """Where the API listens, how it judges the engine's heartbeat, and how much of the machine
    it may take (ADR 0038)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    heartbeat_max_age_s: float = Field(30.0, gt=0)
    poll_interval: float = Field(0.5, gt=0, le=60)
    serve_in_run: bool = False  # `arbx run` also serves the API (and dashboard) in its loop
    # After SIGTERM, /readyz answers 503 this long while the API still serves, so that a load
    # balancer (a Kubernetes Service) stops sending before connections are refused.
    drain_seconds: float = Field(0.0, ge=0, le=300)
    # Admission control (arbx.api.admission): per client (token, else address) a bucket of
    # client_burst requests refilled at client_rate per second (429 past it); at most
    # max_in_flight requests answered at once (503 past it); the probes their own cap.
    client_rate: float = Field(50.0, gt=0, le=100_000)
    client_burst: int = Field(100, ge=1, le=100_000)
    max_in_flight: int = Field(32, ge=1, le=10_000)
    # A token not seen lately first takes one of its address's new_client_burst, refilled at
    # new_client_rate per second: made-up tokens cost at most that many lookups.
    new_client_rate: float = Field(5.0, gt=0, le=100_000)
    new_client_burst: int = Field(20, ge=1, le=100_000)
    probe_max_in_flight: int = Field(8, ge=1, le=1_000)
    # A 429 is answered after refusal_hold_s (at most its Retry-After), at most max_held at once,
    # so that a client that does not wait costs one refusal per connection per hold.
    refusal_hold_s: float = Field(1.0, ge=0, le=10)
    max_held: int = Field(1024, ge=0, le=100_000)
    # Answers to the same read (status, pages) are shared this many seconds: the API's and the
    # database's work is bounded by the distinct reads asked, not by how often (ADR 0041).
    # Changes made through this API are read at once; the engine's within share_s. 0: off.
    share_s: float = Field(1.0, ge=0, le=60)
    # What a token was found to be (valid, revoked, unknown) is kept this long: a token revoked
    # by `arbx token revoke` is refused within token_cache_s. 0: every request looks it up.
    token_cache_s: float = Field(1.0, ge=0, le=60)
    # `arbx api` lowers its CPU priority to this nice value at its start, so that an engine on
    # the same machine is served first (0 leaves it; a priority is never raised).
    nice: int = Field(10, ge=0, le=19)

    def admission(self) -> AdmissionBounds:
        """The admission control's bounds."""
        return AdmissionBounds(
            client_rate=self.client_rate,
            client_burst=self.client_burst,
            max_in_flight=self.max_in_flight,
            new_client_rate=self.new_client_rate,
            new_client_burst=self.new_client_burst,
            probe_max_in_flight=self.probe_max_in_flight,
            refusal_hold_s=self.refusal_hold_s,
            max_held=self.max_held,
        )
