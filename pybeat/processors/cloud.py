"""``add_cloud_metadata``: the hosting provider's instance metadata in ``cloud.*`` (and
``orchestrator.*`` where the provider tells), as libbeat's processor.

Keys as Beats: ``timeout`` (3s), ``providers`` (default: every provider whose metadata service
is on the link-local address; ``alibaba``/``ecs`` and ``tencent``/``qcloud`` only when named),
``overwrite`` (false: an event that already has ``cloud`` keeps it), ``ssl`` (for
``openstack-ssl``). ``BEATS_ADD_CLOUD_METADATA_PROVIDERS`` (comma-separated) overrides the
provider list, as in Beats.

Every selected provider is asked at once, in background threads started when the processor is
built; the answers are awaited until ``timeout`` at most. ``run`` never does I/O: an event that
arrives before the detection has finished waits for what is left of ``timeout`` once, and after
that the processor only copies the cached document (or does nothing when no provider answered).

Tests point every provider at a local server with the environment variable
``PYBEAT_TEST_CLOUD_METADATA_HOST=127.0.0.1:PORT``: test-only, and only a loopback address is
accepted (anything else is ignored with a warning), so no config or environment can redirect
the processor to another host.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import posixpath
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import field_validator

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext, SslConfig

from ._fields import has_value

#: The link-local address of the AWS, GCP, Azure, DigitalOcean, OpenStack and Hetzner services.
METADATA_HOST = "169.254.169.254"
TEST_HOST_ENV = "PYBEAT_TEST_CLOUD_METADATA_HOST"
PROVIDERS_ENV = "BEATS_ADD_CLOUD_METADATA_PROVIDERS"


class _Client:
    """GETs and PUTs against one provider's metadata service, all within one deadline."""

    def __init__(self, scheme: str, host: str, deadline: float, context: Any):
        self.base = f"{scheme}://{host}"
        self.deadline = deadline
        self.context = context

    def get(self, path: str, headers: dict[str, str] | None = None) -> bytes:
        from ._http import request

        return request("GET", self.base + path, headers=headers, deadline=self.deadline, context=self.context).body

    def put(self, path: str, headers: dict[str, str]) -> bytes:
        from ._http import request

        return request("PUT", self.base + path, headers=headers, body=b"", deadline=self.deadline,
                       context=self.context).body

    def text(self, path: str) -> str:
        return self.get(path).decode("utf-8", "replace")


def _json(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError("metadata is not a JSON object")
    return doc


def _str(v: Any) -> str | None:
    """Beats' schema ``Str``/``StrFromNum``: strings as they are, numbers in decimal."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return str(int(v)) if float(v).is_integer() else str(v)
    return v if isinstance(v, str) else None


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[leaf] = value


# -- providers ---------------------------------------------------------------------------------
def _aws(c: _Client) -> dict[str, Any]:
    """IMDSv2 (a session token from ``PUT /latest/api/token``), falling back to IMDSv1 where the
    token request is refused, as the AWS SDK does."""
    from ._http import HttpError

    headers: dict[str, str] = {}
    try:
        token = c.put("/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        headers["X-aws-ec2-metadata-token"] = token.decode("ascii").strip()
    except HttpError as exc:
        if exc.status not in (403, 404, 405):
            raise
    doc = _json(c.get("/latest/dynamic/instance-identity/document", headers))
    cloud: dict[str, Any] = {}
    _set(cloud, "instance.id", _str(doc.get("instanceId")))
    _set(cloud, "machine.type", _str(doc.get("instanceType")))
    _set(cloud, "region", _str(doc.get("region")))
    _set(cloud, "availability_zone", _str(doc.get("availabilityZone")))
    _set(cloud, "account.id", _str(doc.get("accountId")))
    _set(cloud, "image.id", _str(doc.get("imageId")))
    cloud["service"] = {"name": "EC2"}
    return {"cloud": cloud}


def _gcp(c: _Client) -> dict[str, Any]:
    doc = _json(c.get("/computeMetadata/v1/?recursive=true&alt=json", {"Metadata-Flavor": "Google"}))
    cloud: dict[str, Any] = {"service": {"name": "GCE"}}
    out: dict[str, Any] = {}
    instance = doc.get("instance")
    if isinstance(instance, dict):
        _set(cloud, "instance.id", _str(instance.get("id")))
        _set(cloud, "instance.name", _str(instance.get("name")))
        machine = _str(instance.get("machineType"))
        _set(cloud, "machine.type", posixpath.basename(machine) if machine else None)
        zone = _str(instance.get("zone"))
        if zone:
            zone = posixpath.basename(zone)
            cloud["availability_zone"] = zone
            cloud["region"] = "-".join(zone.split("-")[:-1])  # <region>-<zone letter>
        attrs = instance.get("attributes")
        if isinstance(attrs, dict):
            name = attrs.get("cluster-name")
            if isinstance(name, str) and name:
                cluster: dict[str, Any] = {"name": name}
                url = _kubeconfig_server(attrs.get("kubeconfig"))
                if url:
                    cluster["url"] = url
                out["orchestrator"] = {"cluster": cluster}
    project = doc.get("project")
    if isinstance(project, dict):
        _set(cloud, "project.id", _str(project.get("projectId")))
        _set(cloud, "account.id", _str(project.get("projectId")))
    out["cloud"] = cloud
    return out


def _kubeconfig_server(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        import yaml

        conf = yaml.safe_load(text)
        server = conf["clusters"][0]["cluster"]["server"]
    except Exception:
        return None
    return server if isinstance(server, str) and server else None


def _azure(c: _Client) -> dict[str, Any]:
    doc = _json(c.get("/metadata/instance/compute?api-version=2021-02-01", {"Metadata": "true"}))
    cloud: dict[str, Any] = {}
    _set(cloud, "account.id", _str(doc.get("subscriptionId")))
    _set(cloud, "instance.id", _str(doc.get("vmId")))
    _set(cloud, "instance.name", _str(doc.get("name")))
    _set(cloud, "machine.type", _str(doc.get("vmSize")))
    _set(cloud, "region", _str(doc.get("location")))
    cloud["service"] = {"name": "Virtual Machines"}
    return {"cloud": cloud}


def _digitalocean(c: _Client) -> dict[str, Any]:
    doc = _json(c.get("/metadata/v1.json"))
    cloud: dict[str, Any] = {}
    _set(cloud, "instance.id", _str(doc.get("droplet_id")))
    _set(cloud, "region", _str(doc.get("region")))
    cloud["service"] = {"name": "Droplets"}
    return {"cloud": cloud}


def _paths(c: _Client, fields: list[tuple[str, str]], service: str) -> dict[str, Any]:
    cloud: dict[str, Any] = {}
    for path, key in fields:
        _set(cloud, key, c.text(path))
    cloud["service"] = {"name": service}
    return {"cloud": cloud}


def _openstack(c: _Client) -> dict[str, Any]:
    return _paths(c, [("/2009-04-04/meta-data/instance-id", "instance.id"),
                      ("/2009-04-04/meta-data/instance-type", "machine.type"),
                      ("/2009-04-04/meta-data/hostname", "instance.name"),
                      ("/2009-04-04/meta-data/placement/availability-zone", "availability_zone")], "Nova")


def _hetzner(c: _Client) -> dict[str, Any]:
    return _paths(c, [("/hetzner/v1/metadata/instance-id", "instance.id"),
                      ("/hetzner/v1/metadata/hostname", "instance.name"),
                      ("/hetzner/v1/metadata/availability-zone", "availability_zone"),
                      ("/hetzner/v1/metadata/region", "region")], "Cloud")


def _qcloud(c: _Client) -> dict[str, Any]:
    return _paths(c, [("/meta-data/instance-id", "instance.id"),
                      ("/meta-data/placement/region", "region"),
                      ("/meta-data/placement/zone", "availability_zone")], "CVM")


def _alibaba(c: _Client) -> dict[str, Any]:
    return _paths(c, [("/latest/meta-data/instance-id", "instance.id"),
                      ("/latest/meta-data/region-id", "region"),
                      ("/latest/meta-data/zone-id", "availability_zone")], "ECS")


@dataclass(frozen=True)
class Provider:
    """One metadata service: ``key`` names the fetcher (aliases share it), ``provider`` is what
    ``cloud.provider`` says, ``default`` whether it is asked when ``providers`` is not set."""

    key: str
    provider: str
    default: bool
    host: str
    fetch: Callable[[_Client], dict[str, Any]]
    scheme: str = "http"


_AWS = Provider("aws-ec2", "aws", True, METADATA_HOST, _aws)
_GCP = Provider("google-gce", "gcp", True, METADATA_HOST, _gcp)
_AZURE = Provider("azure-compute", "azure", True, METADATA_HOST, _azure)
_DO = Provider("digitalocean", "digitalocean", True, METADATA_HOST, _digitalocean)
_NOVA = Provider("openstack-nova", "openstack", True, METADATA_HOST, _openstack)
_NOVA_SSL = Provider("openstack-nova-ssl", "openstack", True, METADATA_HOST, _openstack, "https")
_HETZNER = Provider("hetzner-cloud", "hetzner", True, METADATA_HOST, _hetzner)
_QCLOUD = Provider("tencent-qcloud", "qcloud", False, "metadata.tencentyun.com", _qcloud)
_ALIBABA = Provider("alibaba-ecs", "ecs", False, "100.100.100.200", _alibaba)

#: The names ``providers`` accepts (Beats' list, aliases included).
PROVIDERS: dict[str, Provider] = {
    "aws": _AWS, "ec2": _AWS, "gcp": _GCP, "azure": _AZURE, "digitalocean": _DO,
    "openstack": _NOVA, "nova": _NOVA, "huawei": _NOVA, "openstack-ssl": _NOVA_SSL, "nova-ssl": _NOVA_SSL,
    "hetzner": _HETZNER, "qcloud": _QCLOUD, "tencent": _QCLOUD, "alibaba": _ALIBABA, "ecs": _ALIBABA,
}
#: Answers from these win when several providers answer (OpenStack also serves EC2's API).
PRIORITY = ("aws-ec2",)


class AddCloudMetadataConfig(PluginConfig):
    timeout: Duration = 3.0
    overwrite: bool = False
    providers: list[str] | None = None
    ssl: SslConfig | None = None

    @field_validator("providers")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if name not in PROVIDERS:
                raise ValueError(f"unknown provider '{name}' (one of {', '.join(sorted(PROVIDERS))})")
        return v

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("timeout must be a positive duration such as 3s")
        return v


def select_providers(names: list[str] | None, env: dict[str, str] | os._Environ[str] = os.environ) -> list[Provider]:
    """Beats' selection: the environment variable, else the configured names, else the
    default ones; aliases ask once."""
    if PROVIDERS_ENV in env:
        names = [n.strip() for n in env[PROVIDERS_ENV].split(",") if n.strip()]
        chosen = [PROVIDERS[n] for n in names if n in PROVIDERS]
    elif names:
        chosen = [PROVIDERS[n] for n in names]
    else:
        chosen = [p for p in PROVIDERS.values() if p.default]
    return list({p.key: p for p in chosen}.values())


def test_host(env: dict[str, str] | os._Environ[str] = os.environ, logger: Any = None) -> str | None:
    """The loopback ``host:port`` of :data:`TEST_HOST_ENV`, or None (unset or not loopback)."""
    value = env.get(TEST_HOST_ENV)
    if not value:
        return None
    host = value.rsplit(":", 1)[0].strip("[]") if ":" in value else value
    try:
        if ipaddress.ip_address(host).is_loopback:
            return value
    except ValueError:
        pass
    if logger is not None:
        logger.warning("ignoring the test-only metadata host: only a loopback address is accepted",
                       variable=TEST_HOST_ENV)
    return None


class AddCloudMetadata:
    def __init__(self, providers: list[Provider], timeout: float, overwrite: bool, ssl: SslConfig | None,
                 logger: Any = None, host_override: str | None = None):
        self.providers = providers
        self.timeout = timeout
        self.overwrite = overwrite
        self.logger = logger
        self.metadata: dict[str, Any] | None = None
        self.provider: str | None = None
        self.errors: dict[str, str] = {}
        self._ssl = ssl
        self._override = host_override
        self._deadline = time.monotonic() + timeout
        self._done = threading.Event()
        self._may_wait = True
        threading.Thread(target=self._detect, name="add_cloud_metadata", daemon=True).start()

    # -- detection (background) --------------------------------------------------------------
    def _detect(self) -> None:
        try:
            results: queue.Queue[tuple[Provider, dict[str, Any] | None, str | None]] = queue.Queue()
            for p in self.providers:
                threading.Thread(target=self._ask, args=(p, results), daemon=True,
                                 name=f"add_cloud_metadata-{p.key}").start()
            answers: list[tuple[Provider, dict[str, Any]]] = []
            for _ in self.providers:
                try:
                    p, doc, err = results.get(timeout=max(0.0, self._deadline - time.monotonic()))
                except queue.Empty:
                    break
                if doc is not None:
                    answers.append((p, doc))
                elif err:
                    self.errors[p.key] = err
            chosen = next((a for a in answers if a[0].key in PRIORITY), answers[0] if answers else None)
            if chosen is not None:
                self.provider = chosen[0].provider
                self.metadata = chosen[1]
            if self.logger is not None:
                if chosen is None:
                    self.logger.info("add_cloud_metadata: hosting provider type not detected")
                else:
                    self.logger.info("add_cloud_metadata: hosting provider type detected", provider=self.provider)
        finally:
            self._done.set()

    def _ask(self, p: Provider, results: "queue.Queue[Any]") -> None:
        try:
            context = None
            if p.scheme == "https":
                from ._http import ssl_context

                context = ssl_context(self._ssl)
            client = _Client(p.scheme, self._override or p.host, self._deadline, context)
            doc = p.fetch(client)
            doc.setdefault("cloud", {})["provider"] = p.provider
            results.put((p, doc, None))
        except Exception as exc:  # any failure means "not this provider"
            results.put((p, None, f"{type(exc).__name__}: {exc}"))

    def wait(self) -> bool:
        """Wait for the detection (at most the rest of ``timeout``); True when it finished."""
        return self._done.wait(max(0.0, self._deadline - time.monotonic()) + 0.5)

    # -- per event -----------------------------------------------------------------------------
    def run(self, event: Event) -> Event:
        meta = self.metadata
        if meta is None:
            if not self._may_wait or self._done.is_set():
                return event
            self._done.wait(max(0.0, self._deadline - time.monotonic()))
            self._may_wait = False
            meta = self.metadata
            if meta is None:
                return event
        fields = event.fields
        for key, value in meta.items():
            if not self.overwrite and has_value(event, key):
                continue
            fields[key] = copy.deepcopy(value)
        return event


class AddCloudMetadataPlugin:
    name = "add_cloud_metadata"
    api_version = "1.0"
    config_model = AddCloudMetadataConfig

    def create(self, config: AddCloudMetadataConfig, ctx: ProcessorContext) -> AddCloudMetadata:
        return AddCloudMetadata(select_providers(config.providers), config.timeout, config.overwrite, config.ssl,
                                ctx.logger, test_host(logger=ctx.logger))


add_cloud_metadata = AddCloudMetadataPlugin()
