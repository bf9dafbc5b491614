"""Settings every network output shares, as libbeat spells them: ``ssl.*`` (reference §7.7)
and ``backoff.*``. Outputs embed these models in their own config; building a TLS context from
them is the output's job (validation has no side effects)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pybeat._sdk.config import PluginConfig
from pybeat.durations import Duration

__all__ = ["BackoffConfig", "RestartOnCertChange", "SslConfig"]


class BackoffConfig(PluginConfig):
    """Exponential backoff between failed attempts: from ``init`` doubling up to ``max``."""

    init: Duration = Field(default=1.0, gt=0)
    max: Duration = Field(default=60.0, gt=0)


class RestartOnCertChange(PluginConfig):
    enabled: bool = False
    period: Duration = 60.0


class SslConfig(PluginConfig):
    enabled: bool | None = None  # None: on whenever the ssl section is present (as Beats does)
    verification_mode: Literal["full", "strict", "certificate", "none"] = "full"
    supported_protocols: list[Literal["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]] = [
        "TLSv1.1", "TLSv1.2", "TLSv1.3"
    ]
    certificate_authorities: list[str] = []
    certificate: str | None = None
    key: str | None = None
    key_passphrase: str | None = None
    key_passphrase_path: str | None = None
    cipher_suites: list[str] = []
    curve_types: list[str] = []
    renegotiation: Literal["never", "once", "freely"] = "never"
    ca_sha256: list[str] = []
    ca_trusted_fingerprint: str | None = None
    restart_on_cert_change: RestartOnCertChange = RestartOnCertChange()

    @field_validator("certificate_authorities", "ca_sha256", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        """A single value or a list; empty values (Beats' reference config has
        ``ssl.ca_sha256: ""``) mean none."""
        if isinstance(v, str):
            return [v] if v.strip() else []
        return [x for x in v if not (isinstance(x, str) and not x.strip())] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _pairs(self) -> "SslConfig":
        if bool(self.certificate) != bool(self.key):
            raise ValueError("ssl.certificate and ssl.key must be set together (client authentication)")
        return self
