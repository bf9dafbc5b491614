"""Config models: every plugin's settings are a pydantic v2 model derived from these."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from pybeat.durations import Duration

__all__ = ["CommonProtocolConfig", "PluginConfig"]


class PluginConfig(BaseModel):
    """Base for every plugin's config model: unknown keys are errors, never silently ignored
    (the agent reports them with the file, the line and a "did you mean")."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CommonProtocolConfig(PluginConfig):
    """Keys every Packetbeat protocol accepts (``packetbeat.protocols[*]``). The agent applies
    ``fields``, ``fields_under_root``, ``tags``, ``processors``, ``index`` and
    ``interface`` for you; the protocol reads the rest."""

    type: str
    enabled: bool = True
    ports: list[int] = []
    fields: dict[str, Any] = {}
    fields_under_root: bool = False
    tags: list[str] = []
    processors: list[dict[str, Any]] = []
    keep_null: bool = False
    index: str | None = None
    send_request: bool = False
    send_response: bool = False
    transaction_timeout: Duration = 10.0
    interface: dict[str, Any] = {}

    @field_validator("transaction_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("transaction_timeout must be a positive duration such as 10s")
        return value
