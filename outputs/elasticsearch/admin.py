"""Index management and connection checks, for ``pybeat setup``, ``export`` and ``test output``.

Owns: installing the index template and the ILM (Elasticsearch) or ISM (OpenSearch) policy
where the cluster has them, the exported forms of both, and the step-by-step ``test output``
walk-through. The output calls :func:`ensure_index_management` once when it first connects.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Mapping, TextIO

from elastic_transport import TransportError

from pybeat.api import BeatInfo, redact_url, scrub
from pybeat.outputs.elasticsearch.client import AuthError, ClusterInfo, Connection, ssl_context
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from pybeat.outputs.elasticsearch.template import TemplateTarget, build_template, ilm_policy, ism_policy

__all__ = [
    "ensure_index_management",
    "export_ilm_policy",
    "export_template",
    "setup_index_management",
    "test_output",
]


def _section(setup: dict[str, Any] | None, key: str) -> dict[str, Any]:
    value = (setup or {}).get(key)
    return value if isinstance(value, dict) else {}


def _ilm_wanted(setup: dict[str, Any] | None, info: ClusterInfo) -> bool:
    """``setup.ilm.enabled``: true/auto use ILM where the cluster has it, false never."""
    enabled = _section(setup, "ilm").get("enabled", True)
    if enabled is False or str(enabled).lower() == "false":
        return False
    return info.flavour == "elasticsearch" and info.ilm and info.data_streams


def _target(info: ClusterInfo) -> TemplateTarget:
    return TemplateTarget(info.flavour, info.version,
                          data_stream=info.flavour == "elasticsearch" and info.data_streams)


def export_template(es_config: ElasticsearchConfig | None, setup: dict[str, Any], beat: BeatInfo,
                    version: str | None = None, declared: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template ``pybeat export template`` prints (for ``--es.version``, default 8.x)."""
    target = TemplateTarget.parse(version)
    ilm_name = None
    if target.data_stream and _section(setup, "ilm").get("enabled", True) not in (False, "false"):
        ilm_name = ilm_policy(setup)[0]
    return build_template(setup or {}, beat, target, ilm_name, declared)[1]


def export_ilm_policy(es_config: ElasticsearchConfig | None, setup: dict[str, Any], beat: BeatInfo,
                      flavour: str = "elasticsearch") -> dict[str, Any]:
    """ILM policy for Elasticsearch, ISM policy for OpenSearch."""
    if flavour == "opensearch":
        return ism_policy(setup or {}, beat)[1]
    return ilm_policy(setup or {})[1]


def _install(conn: Connection, setup: dict[str, Any] | None, beat: BeatInfo, say: Any, force: bool,
             declared: Mapping[str, str] | None = None) -> None:
    info = conn.info or conn.discover()
    tcfg = _section(setup, "template")
    overwrite = force or bool(tcfg.get("overwrite", False))
    ilm_name = None
    if _ilm_wanted(setup, info):
        ilm_name, policy = ilm_policy(setup or {})
        icfg = _section(setup, "ilm")
        exists = False
        if icfg.get("check_exists", True) and not (force or icfg.get("overwrite")):
            st, _ = conn.request("GET", f"/_ilm/policy/{ilm_name}")
            exists = st == 200
        if not exists:
            st, body = conn.request("PUT", f"/_ilm/policy/{ilm_name}", body=policy)
            _check(st, body, f"ILM policy {ilm_name}")
            say(f"ILM policy {ilm_name} loaded")
        else:
            say(f"ILM policy {ilm_name} exists already")
    elif info.flavour == "elasticsearch":
        say("ILM policy not loaded: " + ("disabled by setup.ilm.enabled" if _section(setup, "ilm").get("enabled", True) in (False, "false")
                                          else "this cluster has no ILM or data streams (daily indices are used)"))
    if info.flavour == "opensearch":
        if info.ism:
            name, policy = ism_policy(setup or {}, beat)
            st, _ = conn.request("GET", f"/_plugins/_ism/policies/{name}")
            if st != 200:
                st, body = conn.request("PUT", f"/_plugins/_ism/policies/{name}", body=policy)
                _check(st, body, f"ISM policy {name}")
                say(f"ISM policy {name} loaded")
            else:
                say(f"ISM policy {name} exists already")
        else:
            say("ISM policy not loaded: the index management plugin is not installed on this cluster")
    if tcfg.get("enabled", True) in (False, "false"):
        say("Index template loading disabled by setup.template.enabled")
        return
    name, body = build_template(setup or {}, beat, _target(info), ilm_name, declared)
    endpoint = "_index_template" if _target(info).composable else "_template"
    if not overwrite:
        st, _ = conn.request("HEAD", f"/{endpoint}/{name}")
        if st == 200:
            say(f"Index template {name} exists already")
            return
    st, resp = conn.request("PUT", f"/{endpoint}/{name}", body=body)
    _check(st, resp, f"index template {name}")
    say(f"Index template {name} loaded")


def _check(status: int, body: Any, what: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"loading {what} failed: HTTP {status}: {str(body)[:500]}")


def ensure_index_management(conn: Connection, setup: dict[str, Any] | None, beat: BeatInfo, log: Any = None,
                            declared: Mapping[str, str] | None = None) -> None:
    """On connect: load what is missing (never overwrites unless ``setup.*.overwrite``)."""
    def say(msg: str) -> None:
        if log is not None:
            log.info(msg, output="elasticsearch")

    try:
        _install(conn, setup, beat, say, force=False, declared=declared)
    except RuntimeError as exc:  # the output still runs; events may get dynamic mappings
        if log is not None:
            log.error("index management setup failed", output="elasticsearch", error=str(exc))


def setup_index_management(es_config: ElasticsearchConfig, setup: dict[str, Any], beat: BeatInfo, out: TextIO,
                           declared: Mapping[str, str] | None = None) -> None:
    """``pybeat setup --index-management``: load the template and policy, overwriting."""
    conn = Connection(es_config.effective())
    try:
        info = conn.discover()
        out.write(f"Connected to {info.flavour} {info.number}\n")
        _install(conn, setup, beat, lambda m: out.write(m + "\n"), force=True, declared=declared)
        out.write("Index setup finished.\n")
    finally:
        conn.close()


def test_output(es_config: ElasticsearchConfig, beat: BeatInfo, out: TextIO) -> bool:
    """``pybeat test output``: each step for each host, as Beats prints it. True if all pass."""
    cfg = es_config.effective()
    conn = Connection(cfg)
    ok = True
    try:
        for host in conn.hosts:
            ok = _test_host(cfg, conn, host, out) and ok
    finally:
        conn.close()
    return ok


def _test_host(cfg: ElasticsearchConfig, conn: Connection, host: Any, out: TextIO) -> bool:
    w = out.write
    w(f"elasticsearch: {redact_url(host.url)}...\n")
    w("  parse url... OK\n")
    w("  connection...\n")
    w("    parse host... OK\n")
    try:
        infos = socket.getaddrinfo(host.host, host.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        w(f"    dns lookup... ERROR {scrub(str(exc))}\n")
        return False
    addrs = sorted({str(i[4][0]) for i in infos})
    w("    dns lookup... OK\n")
    w(f"    addresses: {', '.join(addrs)}\n")
    proxy = None if cfg.proxy_disable else cfg.proxy_url
    sock = None
    if proxy:
        w(f"    proxy: {redact_url(proxy)} (dial and TLS are checked by the request below)\n")
    else:
        try:
            sock = socket.create_connection((host.host, host.port), timeout=min(cfg.timeout, 10.0))
        except OSError as exc:
            w(f"    dial up... ERROR {scrub(str(exc))}\n")
            return False
        w("    dial up... OK\n")
    if host.scheme != "https":
        w("  TLS... WARN secure connection disabled\n")
    elif sock is not None:
        w("  TLS...\n")
        mode = cfg.ssl.verification_mode
        w("    security: server's certificate chain verification is " + ("DISABLED\n" if mode == "none" else "enabled\n"))
        if mode in ("none", "certificate"):
            w("    security: server's host name verification is DISABLED\n")
        try:
            ctx = ssl_context(cfg.ssl)
            with ctx.wrap_socket(sock, server_hostname=host.host) as tls:
                w("    handshake... OK\n")
                w(f"    TLS version: {tls.version()}\n")
                cipher = tls.cipher()
                if cipher:
                    w(f"    cipher: {cipher[0]}\n")
            sock = None
        except (ssl.SSLError, OSError) as exc:
            w(f"    handshake... ERROR {scrub(str(exc))}\n")
            return False
        w("    dial up... OK\n")
    if sock is not None:
        sock.close()
    single = Connection(cfg.model_copy(update={"hosts": [host.url]}))
    try:
        info = single.discover()
    except AuthError as exc:
        w(f"  talk to server... ERROR {scrub(str(exc))}\n")
        return False
    except TransportError as exc:
        w(f"  talk to server... ERROR {scrub(str(exc))}\n")
        return False
    finally:
        single.close()
    w("  talk to server... OK\n")
    w(f"  version: {info.number}\n")
    w(f"  distribution: {info.flavour}\n")
    return True
