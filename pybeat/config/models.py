"""The agent's config schema: one pydantic model per section, unknown keys refused.

Owns: what each key means, its default and its type, for the sections the agent core reads.
Protocol, output and processor settings are validated by their plugins' own models (see
pybeat/agent.py); here they are kept as raw mappings. Validation has no side effects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pybeat.api import PluginConfig
from pybeat.durations import Duration


def no_effect(default: Any) -> Any:
    """A Packetbeat key pybeat accepts but does not act on: setting it to anything but its
    default gets the same "no effect" warning as the keys of beats.py (see ``no_effect_keys``)."""
    return Field(default=default, json_schema_extra={"no_effect": True})


def no_effect_keys(model: BaseModel, prefix: str = "") -> list[str]:
    """The dotted keys of ``model`` marked ``no_effect`` that the config set to something else
    than their default (``enabled: false`` of such a section is its default: nothing to say)."""
    found: list[str] = []
    for name, info in type(model).model_fields.items():
        key = f"{prefix}{info.alias or name}"
        value = getattr(model, name)
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("no_effect"):
            if name in model.model_fields_set and value != info.default:
                found.append(key)
        elif isinstance(value, BaseModel):
            found += no_effect_keys(value, key + ".")
    return found


def unset_nulls(model: type[PluginConfig], data: Any) -> Any:
    """Beats reads a key written without a value (``setup.kibana:`` followed only by comments,
    ``name:``) as not set: such keys of ``model`` take their defaults. Unknown keys stay, so a
    typo is still reported."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        return data
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    return {k: v for k, v in data.items() if not (v is None and k in known)}


class Section(PluginConfig):
    @model_validator(mode="before")
    @classmethod
    def _unset_nulls(cls, data: Any) -> Any:
        return unset_nulls(cls, data)


class InterfaceConfig(Section):
    device: str | int | None = None
    type: Literal["pcap", "af_packet", "autodetect", ""] = "pcap"
    snaplen: int = Field(default=65535, ge=1, le=262144)
    buffer_size_mb: int = 30
    bpf_filter: str | None = None
    with_vlans: bool = False
    internal_networks: list[str] = []
    auto_promisc_mode: bool = False
    poll_default_route: Duration = 0.0
    metrics_interval: Duration = 5.0
    fanout_group: int | None = Field(default=None, ge=0, le=65535)
    file: str | None = None
    ignore_outgoing: bool = False
    id: str | None = None


class FlowsConfig(Section):
    enabled: bool = True
    timeout: Duration = Field(default=30.0, gt=0)
    period: Duration = 10.0  # <= 0: final reports only (Beats' -1s)
    enable_delta_flow_reports: bool = False
    allow_mismatched_eth: bool = False
    fields: dict[str, Any] = {}
    fields_under_root: bool = False
    tags: list[str] = []
    processors: list[dict[str, Any]] = []
    keep_null: bool = False
    index: str | None = None


class ProcsConfig(Section):
    enabled: bool = False
    monitored: list[dict[str, Any]] = []
    max_proc_read_errors: int | None = None
    refresh_pids: Duration | None = None


class LimitsConfig(Section):
    """pybeat's decoder caps (``packetbeat.limits``; see ARCHITECTURE.md, "caps")."""

    max_fragmented_datagrams: int = Field(default=1024, ge=1)
    fragment_timeout_s: float = Field(default=30.0, gt=0)
    max_tcp_connections: int = Field(default=65536, ge=1)
    tcp_idle_timeout_s: float = Field(default=120.0, gt=0)
    max_ooo_segments: int = Field(default=64, ge=1)
    max_ooo_bytes: int = Field(default=1 << 20, ge=1)
    tick_interval_s: float = Field(default=0.5, gt=0)


class IncludeConfig(Section):
    """``pybeat.config.d``: more config files merged after the -c files (loader.include)."""

    d: str | list[str] | None = None


class PacketbeatSection(Section):
    interfaces: InterfaceConfig | list[InterfaceConfig] = InterfaceConfig()
    protocols: list[dict[str, Any]] | dict[str, dict[str, Any]] = []
    flows: FlowsConfig | None = None
    procs: ProcsConfig = no_effect(ProcsConfig())
    ignore_outgoing: bool = False
    shutdown_timeout: Duration = 0.0
    overwrite_pipelines: bool = no_effect(False)
    npcap: dict[str, Any] = {}
    # pybeat's own settings (not in Packetbeat):
    config: IncludeConfig = IncludeConfig()  # pybeat.config.d: pybeat.d/*.yml
    #: detectors by name (pybeat.detection.<name>: {enabled: true, ...}), validated by their plugins
    detection: dict[str, dict[str, Any] | None] = {}
    limits: LimitsConfig = LimitsConfig()  # decoder caps, see ARCHITECTURE.md "caps"
    # processes for a -I replay, split by flow; "auto" = one per CPU (each writes its own files)
    workers: int | Literal["auto"] = Field(default=1)
    #: the detectors in a process of their own (agent/detection.py); "auto": when the agent
    #: may use more than one CPU
    detection_process: bool | Literal["auto"] = "auto"

    @field_validator("workers")
    @classmethod
    def _workers_range(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 64:
            raise ValueError("workers must be between 1 and 64, or auto")
        return v


class FlushConfig(Section):
    min_events: int = Field(default=1600, ge=0)
    timeout: Duration = 10.0


class MemQueueConfig(Section):
    events: int = Field(default=3200, ge=1)
    flush: FlushConfig = FlushConfig()
    immediate_shutdown: bool = False

    @field_validator("immediate_shutdown")
    @classmethod
    def _drains(cls, v: bool) -> bool:
        if v:
            raise ValueError("pybeat always drains the queue at shutdown; immediate_shutdown: true is not supported")
        return v


class DiskQueueConfig(Section):
    """``queue.disk`` (pybeat/pipeline/diskqueue.py; docs/outputs.md)."""

    path: str | None = None
    max_size: str | int | None = None
    segment_size: str | int | None = None
    read_ahead: int = Field(default=512, ge=1)
    write_ahead: int = Field(default=2048, ge=1)
    retry_interval: Duration = 1.0
    max_retry_interval: Duration = 30.0

    @field_validator("max_size", "segment_size")
    @classmethod
    def _size(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            from pybeat.pipeline.diskqueue import parse_size

            try:
                parse_size(v)
            except ValueError:
                raise ValueError("expected a size such as 10GB or 512MiB (0: unbounded)") from None
        return v

    @model_validator(mode="after")
    def _sizes_fit(self) -> "DiskQueueConfig":
        from pybeat.pipeline.diskqueue import DiskQueueSettings, parse_size

        DiskQueueSettings(  # raises ValueError when segment_size does not fit twice in max_size
            path="", max_size=parse_size(self.max_size) if self.max_size is not None else 10 * 1000**3,
            segment_size=parse_size(self.segment_size) if self.segment_size is not None else 0)
        return self


class QueueConfig(Section):
    mem: MemQueueConfig | None = None
    disk: DiskQueueConfig | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "QueueConfig":
        if self.mem is not None and self.disk is not None:
            raise ValueError("queue.mem and queue.disk are both set; a queue is one or the other (as in Beats)")
        return self


class LoggingFilesConfig(Section):
    path: str | None = None
    name: str = "pybeat"
    # pybeat writes one log file a day, mode 0600, and does not rotate it by size
    rotateeverybytes: int = no_effect(10485760)
    keepfiles: int = no_effect(7)
    permissions: int | str = no_effect("0600")
    interval: Duration = no_effect(0.0)
    rotateonstartup: bool = no_effect(True)
    redirect_stderr: bool = no_effect(False)


class LoggingMetricsConfig(Section):
    enabled: bool = True
    period: Duration = 30.0
    namespaces: list[str] = no_effect(["stats"])


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "warn", "error", "critical"] = "info"
    selectors: list[str] = []
    to_stderr: bool = False
    to_syslog: bool = no_effect(False)
    to_eventlog: bool = no_effect(False)
    to_files: bool = True
    json_: bool = Field(default=True, alias="json")
    files: LoggingFilesConfig = LoggingFilesConfig()
    metrics: LoggingMetricsConfig = LoggingMetricsConfig()
    ecs: bool = no_effect(True)


class HttpConfig(Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=5066, ge=0, le=65535)


class PathConfig(Section):
    home: str | None = None
    config: str | None = None
    data: str | None = None
    logs: str | None = None


class TemplateConfig(Section):
    enabled: bool = True
    name: str | None = None
    pattern: str | None = None
    fields: str | None = None
    overwrite: bool = False
    settings: dict[str, Any] = {}
    json_: dict[str, Any] = Field(default={}, alias="json")
    append_fields: list[dict[str, Any]] = []
    type: str | None = None
    priority: int | None = None


class IlmConfig(Section):
    enabled: bool | str = True
    policy_name: str | None = None
    policy_file: str | None = None
    check_exists: bool = True
    overwrite: bool = False
    rollover_alias: str | None = None
    pattern: str | None = None


class SetupConfig(Section):
    template: TemplateConfig = TemplateConfig()
    ilm: IlmConfig = IlmConfig()
    ism: dict[str, Any] = {}
    # setup.kibana, setup.dashboards, ...: Packetbeat keys with no effect here (beats.py)


class KeystoreConfig(Section):
    path: str | None = None  # default: <path.data>/pybeat.keystore


#: Top-level sections Beats defines whose meaning an output plugin supplies (it lists them in its
#: ``top_level_sections``; see pybeat.config.settings): Elastic Cloud's cloud.id / cloud.auth.
PLUGIN_SECTIONS = ("cloud",)


class CloudConfig(Section):
    id: str | None = None
    auth: str | None = None


class AgentConfig(Section):
    """The whole file. ``packetbeat`` also answers to ``pybeat`` (merged by the loader)."""

    packetbeat: PacketbeatSection = PacketbeatSection()
    name: str | None = None
    tags: list[str] = []
    fields: dict[str, Any] = {}
    fields_under_root: bool = False
    processors: list[dict[str, Any]] = []
    output: dict[str, dict[str, Any] | None] = {}
    queue: QueueConfig = QueueConfig()
    logging: LoggingConfig = LoggingConfig()
    http: HttpConfig = HttpConfig()
    path: PathConfig = PathConfig()
    setup: SetupConfig = SetupConfig()
    cloud: CloudConfig = CloudConfig()
    max_procs: int | None = no_effect(None)
    keystore: KeystoreConfig = KeystoreConfig()
    # monitoring, xpack, seccomp, instrumentation, ...: Packetbeat keys with no effect (beats.py)

    @field_validator("output", mode="before")
    @classmethod
    def _outputs_are_mappings(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({} if val is None else val) for k, val in v.items()}
        return v
