"""The ``output.elasticsearch`` settings (every key of libbeat's ES output) and presets.

Owns: names, defaults and checks of the keys; ``effective()`` applies a ``preset``. Building
the client (TLS context, transport) is client.py's job; validating has no side effects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pybeat.api import BackoffConfig, Duration, PluginConfig, SslConfig

__all__ = ["BackoffConfig", "ElasticsearchConfig", "SslConfig"]


class DeadLetterIndex(PluginConfig):
    index: str


class NonIndexablePolicy(PluginConfig):
    drop: dict[str, Any] | None = None
    dead_letter_index: DeadLetterIndex | None = None

    @model_validator(mode="after")
    def _one(self) -> "NonIndexablePolicy":
        if self.drop is not None and self.dead_letter_index is not None:
            raise ValueError("non_indexable_policy takes one of drop or dead_letter_index, not both")
        return self


class SelectorRule(PluginConfig):
    """One ``indices``/``pipelines`` rule: a format string, optional lookup table and condition."""

    index: str | None = None
    pipeline: str | None = None
    mappings: dict[str, str] | None = None
    default: str | None = None
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _has_target(self) -> "SelectorRule":
        if self.index is None and self.pipeline is None:
            raise ValueError("a rule needs an index (in indices) or a pipeline (in pipelines)")
        return self


# Current Beats presets (docs of 8.12+); the queue part is the agent's business.
PRESETS: dict[str, dict[str, Any]] = {
    "balanced": {"bulk_max_size": 1600, "worker": 1, "compression_level": 1, "idle_connection_timeout": 3.0},
    "throughput": {"bulk_max_size": 1600, "worker": 4, "compression_level": 1, "idle_connection_timeout": 15.0},
    "scale": {
        "bulk_max_size": 1600, "worker": 1, "compression_level": 1, "idle_connection_timeout": 1.0,
        "backoff": {"init": 5.0, "max": 300.0},
    },
    "latency": {"bulk_max_size": 50, "worker": 1, "compression_level": 1, "idle_connection_timeout": 60.0},
}


class ElasticsearchConfig(PluginConfig):
    enabled: bool = True
    hosts: list[str] = ["localhost:9200"]
    protocol: Literal["http", "https", ""] = ""
    path: str = ""
    parameters: dict[str, Any] = {}
    headers: dict[str, str] = {}
    proxy_url: str | None = None
    proxy_disable: bool = False
    proxy_headers: dict[str, str] = {}
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    compression_level: int = Field(default=1, ge=0, le=9)
    escape_html: bool = False
    worker: int | None = Field(default=None, ge=1)
    workers: int | None = Field(default=None, ge=1)
    loadbalance: bool = True
    bulk_max_size: int = 1600
    max_retries: int = 3
    timeout: Duration = 90.0
    backoff: BackoffConfig = BackoffConfig()
    idle_connection_timeout: Duration = 3.0
    allow_older_versions: bool = True
    index: str | None = None
    indices: list[SelectorRule] = []
    pipeline: str | None = None
    pipelines: list[SelectorRule] = []
    non_indexable_policy: NonIndexablePolicy = NonIndexablePolicy()
    preset: Literal["custom", "balanced", "throughput", "scale", "latency"] = "custom"
    ssl: SslConfig = SslConfig()
    kerberos: dict[str, Any] = {}
    # Accepted for config compatibility with older Beats files; they have no effect here.
    template: dict[str, Any] | None = None
    ilm: dict[str, Any] | None = None

    @field_validator("hosts")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        """At least one, and each parses as the client will read it (scheme, port; ``protocol``
        and ``path`` change neither): a bad host is a config error here, not a start-up
        failure of ``run``. The message hides the URL's userinfo."""
        from pybeat.outputs.elasticsearch.client import parse_host

        if not v:
            raise ValueError("at least one host is required")
        for host in v:
            parse_host(host)
        return v

    @model_validator(mode="after")
    def _auth(self) -> "ElasticsearchConfig":
        if self.api_key and (self.username or self.password):
            raise ValueError("cannot set both api_key and username/password")
        if self.kerberos and self.kerberos.get("enabled", True):
            raise ValueError("kerberos: Kerberos authentication is not supported by pybeat")
        if self.ssl.ca_trusted_fingerprint or self.ssl.ca_sha256:
            # Refused rather than ignored: a pin that is silently not checked is worse than none.
            raise ValueError(
                "ssl.ca_trusted_fingerprint / ssl.ca_sha256 pins are not supported by pybeat yet; "
                "use ssl.certificate_authorities"
            )
        return self

    def effective(self) -> "ElasticsearchConfig":
        """The config with its ``preset`` applied (preset values win, as in Beats)."""
        preset = PRESETS.get(self.preset)
        if not preset:
            return self
        update = dict(preset)
        if "backoff" in update:
            update["backoff"] = BackoffConfig(**update["backoff"])
        update["worker"] = update.pop("worker")
        update["workers"] = None
        return self.model_copy(update=update)

    @property
    def worker_count(self) -> int:
        return self.workers or self.worker or 1
