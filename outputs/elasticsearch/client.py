"""The connection to the cluster: hosts, TLS, auth, proxy, and what the cluster is.

Owns: turning ``output.elasticsearch`` into an elastic-transport ``Transport`` (round-robin
over ``hosts`` with dead-node backoff and failover, one shared pool for every worker), the TLS
context from ``ssl.*``, ``proxy_url`` (HTTP CONNECT for https), the auth header, and
:class:`ClusterInfo` (flavour, version, features) read at connect time. There is no product
check: Elasticsearch 7/8/9 and OpenSearch 1-3 are all accepted, and the output adapts.
"""

from __future__ import annotations

import base64
import ssl
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import orjson
import urllib3
from elastic_transport import (
    NodeConfig,
    OrjsonSerializer,
    Transport,
    TransportError,
    Urllib3HttpNode,
)

from pybeat.api import redact_url
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig, SslConfig

__all__ = ["ClusterInfo", "Connection", "HostURL", "parse_host", "ssl_context"]

_TLS_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


@dataclass(frozen=True)
class HostURL:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_host(entry: str, protocol: str = "", path: str = "") -> HostURL:
    """A ``hosts`` entry as libbeat reads it: scheme and path optional, port 9200 by default."""
    text = entry.strip()
    if "://" not in text:
        text = f"{protocol or 'http'}://{text}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme {parts.scheme!r} in host {redact_url(entry)!r} (use http or https)")
    if not parts.hostname:
        raise ValueError(f"no host name in {redact_url(entry)!r}")
    try:
        port = parts.port or 9200
        if port < 1:
            raise ValueError(port)
    except ValueError:
        raise ValueError(f"invalid port in host {redact_url(entry)!r} (a number 1-65535)") from None
    url_path = parts.path.rstrip("/") or (("/" + path.strip("/")) if path.strip("/") else "")
    return HostURL(parts.scheme, parts.hostname, port, url_path)


def _read_pem(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    with open(value, encoding="ascii") as fh:
        return fh.read()


def ssl_context(cfg: SslConfig) -> ssl.SSLContext:
    """The SSLContext for ``ssl.*``: only the configured CAs when there are some, else the
    system's; client certificate; protocol range; verification mode."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cfg.supported_protocols:
        versions = sorted(_TLS_VERSIONS[p] for p in cfg.supported_protocols)
        ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cas = list(cfg.certificate_authorities)  # type: ignore[arg-type]
    if cas:
        ctx.load_verify_locations(cadata="\n".join(_read_pem(c) for c in cas))
    else:
        ctx.load_default_certs()
    if cfg.certificate:
        password = cfg.key_passphrase
        if password is None and cfg.key_passphrase_path:
            with open(cfg.key_passphrase_path, encoding="utf-8") as fh:
                password = fh.read().strip()
        ctx.load_cert_chain(cfg.certificate, cfg.key, password=password)
    if cfg.cipher_suites:
        # Beats spells suites Go's way (ECDHE-RSA-AES-128-GCM-SHA256); OpenSSL drops a dash.
        names = [c.replace("AES-128", "AES128").replace("AES-256", "AES256") for c in cfg.cipher_suites]
        ctx.set_ciphers(":".join(names))
    mode = cfg.verification_mode
    if mode == "none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode == "certificate":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:  # full, strict
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
    return ctx


def auth_header(cfg: ElasticsearchConfig) -> str | None:
    if cfg.api_key:
        key = cfg.api_key
        # Beats takes "id:key"; an already encoded key (no ':') is sent as it is.
        token = base64.b64encode(key.encode()).decode() if ":" in key else key
        return f"ApiKey {token}"
    if cfg.username is not None:
        raw = f"{cfg.username}:{cfg.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()
    return None


def _env_proxy(scheme: str, host: str) -> str | None:
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        return proxy
    return None


class PybeatNode(Urllib3HttpNode):
    """Urllib3HttpNode whose TLS follows ``ssl.*`` exactly and that can use ``proxy_url``.

    elastic-transport's own pool adds certifi's CAs and its own hostname rules to a given
    SSLContext; the pool is rebuilt here from our context alone (before any connection is
    made). The settings elastic-transport's NodeConfig has no field for (proxy, verification
    mode) come from ``settings``: each Connection makes its own subclass (``for_hosts``), so
    nothing rides on the library's private fields. Through a proxy, https uses CONNECT.
    """

    #: (scheme, host, port) -> proxy_url, proxy_headers, cert_reqs, assert_hostname
    settings: dict[tuple[str, str, int], dict[str, Any]] = {}

    @classmethod
    def for_hosts(cls, settings: dict[tuple[str, str, int], dict[str, Any]]) -> type["PybeatNode"]:
        return type("PybeatNode", (cls,), {"settings": settings})

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        extras = self.settings.get((config.scheme, config.host, config.port), {})
        proxy = extras.get("proxy_url")
        if config.scheme != "https" and not proxy:
            return
        old = self.pool
        kw: dict[str, Any] = {"timeout": old.timeout, "maxsize": config.connections_per_node, "block": True}
        if config.scheme == "https":
            kw["ssl_context"] = config.ssl_context
            kw["cert_reqs"] = extras.get("cert_reqs", ssl.CERT_REQUIRED)
            kw["assert_hostname"] = extras.get("assert_hostname")
        if proxy:
            manager = urllib3.ProxyManager(proxy, proxy_headers=extras.get("proxy_headers") or None,
                                           num_pools=2, **kw)
            if config.scheme == "https":  # CONNECT tunnel: a pool to the node through the proxy
                self.pool = manager.connection_from_host(config.host, config.port, "https", pool_kwargs=kw)
            else:  # plain http: absolute-form request lines to the proxy
                self.pool = _AbsoluteFormPool(  # type: ignore[assignment]
                    manager, f"http://{_url_host(config.host)}:{config.port}")
        else:
            self.pool = urllib3.HTTPSConnectionPool(config.host, port=config.port, **kw)
        old.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _AbsoluteFormPool:
    """Looks like a connection pool to Urllib3HttpNode; sends through an HTTP proxy."""

    def __init__(self, manager: urllib3.ProxyManager, base: str):
        self.manager = manager
        self.base = base
        self.timeout = urllib3.Timeout()

    def urlopen(self, method: str, url: str, **kw: Any) -> Any:
        kw.pop("assert_same_host", None)
        return self.manager.urlopen(method, self.base + url, redirect=False, **kw)

    def close(self) -> None:
        self.manager.clear()


@dataclass
class ClusterInfo:
    """What the cluster said about itself at connect time."""

    flavour: str  # "elasticsearch" or "opensearch"
    number: str
    version: tuple[int, int, int]
    cluster_name: str = ""
    build_flavor: str = ""
    xpack: bool = False
    ilm: bool = False
    data_streams: bool = False
    ism: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def composable_templates(self) -> bool:
        return self.flavour == "opensearch" or self.version >= (7, 8, 0)

    @property
    def bulk_op(self) -> str:
        """``create`` where the cluster has it for auto ids (ES >= 7.5, every OpenSearch)."""
        return "create" if self.flavour == "opensearch" or self.version >= (7, 5, 0) else "index"


def _version_tuple(number: str) -> tuple[int, int, int]:
    nums = []
    for part in number.split("-")[0].split(".")[:3]:
        try:
            nums.append(int(part))
        except ValueError:
            nums.append(0)
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def cluster_info(root: dict[str, Any], feature_status: int, feature_body: Any) -> ClusterInfo:
    """What a cluster is, from its ``GET /`` answer and ``GET /_xpack`` (Elasticsearch) or
    ``GET /_plugins/_ism/policies`` (OpenSearch). Pure, so every flavour is unit-tested."""
    ver_value = root.get("version")
    ver: dict[str, Any] = ver_value if isinstance(ver_value, dict) else {}
    number = str(ver.get("number", "0.0.0"))
    flavour = "opensearch" if ver.get("distribution") == "opensearch" else "elasticsearch"
    info = ClusterInfo(flavour=flavour, number=number, version=_version_tuple(number),
                       cluster_name=str(root.get("cluster_name", "")), build_flavor=str(ver.get("build_flavor", "")))
    if flavour == "opensearch":
        info.data_streams = True
        info.ism = feature_status == 200
        return info
    if feature_status == 200 and isinstance(feature_body, dict):
        feats_value = feature_body.get("features")
        feats: dict[str, Any] = feats_value if isinstance(feats_value, dict) else {}
        ilm_value = feats.get("ilm")
        ilm: dict[str, Any] = ilm_value if isinstance(ilm_value, dict) else {}
        info.xpack = True
        info.ilm = bool(ilm.get("available") and ilm.get("enabled", True))
        ds = feats.get("data_streams")
        info.data_streams = bool(ds.get("available")) if isinstance(ds, dict) else info.version >= (8, 0, 0)
    elif info.version >= (8, 0, 0):
        # Every 8.x+ has data streams and ILM; _xpack may just be forbidden to our key.
        info.xpack = info.ilm = info.data_streams = True
    if info.build_flavor == "serverless":  # Elastic Cloud serverless: no ILM API
        info.ilm, info.data_streams = False, True
    return info


class Connection:
    """One elastic-transport pool shared by every worker of the output."""

    def __init__(self, cfg: ElasticsearchConfig, workers: int = 1):
        self.cfg = cfg
        # A host without a scheme takes ``protocol``, or https when ``ssl.enabled`` is set.
        default_scheme = cfg.protocol or ("https" if cfg.ssl.enabled else "http")
        self.hosts = [parse_host(h, default_scheme, cfg.path) for h in cfg.hosts]
        headers: dict[str, str] = {"user-agent": "pybeat"}
        headers.update(cfg.headers)
        auth = auth_header(cfg)
        if auth:
            headers["authorization"] = auth
        self.query = ("&" + urllib.parse.urlencode(cfg.parameters)) if cfg.parameters else ""
        nodes = []
        node_settings: dict[tuple[str, str, int], dict[str, Any]] = {}
        ctx: ssl.SSLContext | None = None
        for h in self.hosts:
            extras = node_settings.setdefault((h.scheme, h.host, h.port), {})
            proxy = None if cfg.proxy_disable else (cfg.proxy_url or _env_proxy(h.scheme, h.host))
            if proxy:
                extras.update(proxy_url=proxy, proxy_headers=dict(cfg.proxy_headers))
            kw: dict[str, Any] = {}
            if h.scheme == "https":
                if ctx is None:
                    ctx = ssl_context(cfg.ssl)
                kw = {"ssl_context": ctx, "ssl_show_warn": False}
                extras["cert_reqs"] = ctx.verify_mode
                if cfg.ssl.verification_mode in ("certificate", "none"):
                    extras["assert_hostname"] = False
            nodes.append(
                NodeConfig(
                    scheme=h.scheme,
                    host=h.host,
                    port=h.port,
                    path_prefix=h.path,
                    headers=headers,
                    connections_per_node=max(2, workers + 1),
                    request_timeout=cfg.timeout,
                    **kw,
                )
            )
        self.transport = Transport(
            nodes,
            node_class=PybeatNode.for_hosts(node_settings),
            randomize_nodes_in_pool=cfg.loadbalance,
            serializers={"application/json": OrjsonSerializer()},
            max_retries=max(0, len(nodes) - 1),  # fail over once to each other host
            retry_on_status=(),
            retry_on_timeout=True,
            meta_header=False,
            dead_node_backoff_factor=cfg.backoff.init,
            max_dead_node_backoff=cfg.backoff.max,
        )
        self.info: ClusterInfo | None = None
        self.lock = threading.Lock()
        self.setup_done = False

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        """``(status, parsed body)``; transport-level failures raise ``TransportError``."""
        h = dict(headers or {})
        if body is not None and "content-type" not in h:
            h["content-type"] = "application/json"
        h.setdefault("accept", "application/json")
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["request_timeout"] = timeout
        resp = self.transport.perform_request(method, path, body=body, headers=h, **kw)
        return resp.meta.status, resp.body

    def discover(self) -> ClusterInfo:
        """GET / and the feature endpoint of the flavour; sets and returns :attr:`info`."""
        status, body = self.request("GET", "/")
        if status in (401, 403):
            raise AuthError(status, body)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("version"), dict):
            raise AuthError(status, body, f"unexpected answer to GET / (HTTP {status}): {str(body)[:300]}")
        opensearch = body["version"].get("distribution") == "opensearch"
        path = "/_plugins/_ism/policies?size=1" if opensearch else "/_xpack"
        try:
            feature_status, feature_body = self.request("GET", path)
        except TransportError:
            feature_status, feature_body = 0, None
        self.info = cluster_info(body, feature_status, feature_body)
        return self.info

    def close(self) -> None:
        self.transport.close()


class AuthError(Exception):
    """The cluster (or what answers in its place) refused us: HTTP 401/403, or no cluster
    answer at all to ``GET /`` (a proxy's error page, a missing client certificate)."""

    def __init__(self, status: int, body: Any, message: str | None = None):
        reason = ""
        if isinstance(body, dict):
            err = body.get("error")
            reason = err.get("reason", "") if isinstance(err, dict) else str(err or "")
        if message is None:
            message = f"HTTP {status} {'unauthorized' if status == 401 else 'forbidden'}: {reason}".strip()
        super().__init__(message)
        self.status = status


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
