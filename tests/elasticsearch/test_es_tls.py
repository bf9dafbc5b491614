"""TLS, basic auth, Cloud ID and an HTTP proxy, against a real node behind nginx.

nginx (Debian package) terminates TLS with a certificate from a CA made by the test, checks
basic auth, and forwards to an embedded Elasticsearch node. The output reaches it through a
``cloud.id`` whose decoded host is 127.0.0.1 (``<es_id>.<host>`` = ``127`` + ``0.0.1``), with
``cloud.auth`` for the credentials, exactly as an Elastic Cloud deployment would be reached.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest_es import Harness, count, dns_event, esnode, need_tool
from pybeat.outputs.elasticsearch.admin import test_output as run_test_output
from pybeat.outputs.elasticsearch.cloudid import apply_cloud
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from conftest_es import BEAT

pytestmark = pytest.mark.integration

TS0 = 1_795_000_000_000_000_000
API_KEY = "pybeat-key-id:pybeat-key-secret"
API_KEY_B64 = base64.b64encode(API_KEY.encode()).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Proxy:
    def __init__(self, tmp: Path, es_url: str):
        self.dir = tmp
        self.tls_port = _free_port()
        self.apikey_port = _free_port()
        self.mtls_port = _free_port()
        self.http_port = _free_port()
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "2", "-subj", "/CN=pybeat test CA", cwd=tmp)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=localhost", cwd=tmp)
        (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=tmp)
        # A client certificate from the same CA, for mutual TLS.
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
                 "-subj", "/CN=pybeat-agent", cwd=tmp)
        _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "client.pem", "-days", "2", cwd=tmp)
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "s3cret"], capture_output=True, text=True,
                                check=True).stdout.strip()
        (tmp / "htpasswd").write_text(f"elastic:{hashed}\n")
        upstream = es_url.replace("http://", "")
        temp = " ".join(f"{k}_temp_path {tmp}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;" if os.geteuid() == 0 else ""
        (tmp / "nginx.conf").write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 128; }}
http {{
  access_log {tmp}/access.log;
  {temp}
  client_max_body_size 200m;
  server {{
    listen 127.0.0.1:{self.tls_port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    auth_basic "pybeat test";
    auth_basic_user_file {tmp}/htpasswd;
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }}
  }}
  server {{
    # Mutual TLS: a client certificate signed by the test CA is required. Also listens on
    # 127.0.0.2, a name the server certificate does not carry (host name verification tests).
    listen 127.0.0.1:{self.mtls_port} ssl;
    listen 127.0.0.2:{self.mtls_port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    ssl_client_certificate {tmp}/ca.pem;
    ssl_verify_client on;
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    # Like Elastic Cloud with an API key: only "ApiKey base64(id:key)" gets through.
    listen 127.0.0.1:{self.apikey_port} ssl;
    ssl_certificate {tmp}/server.pem;
    ssl_certificate_key {tmp}/server.key;
    location / {{
      if ($http_authorization != "ApiKey {API_KEY_B64}") {{ return 401; }}
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }}
  }}
  server {{
    # A forward proxy for plain-http absolute-URI requests (proxy_url).
    listen 127.0.0.1:{self.http_port};
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-e", f"{tmp}/error.log", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
                time.sleep(0.1)
        self.ca = str(tmp / "ca.pem")

    def cloud_id(self, port: int | None = None) -> str:
        raw = f"0.0.1:{port or self.tls_port}$127$kibana".encode()
        return "test-deployment:" + base64.b64encode(raw).decode()

    def proxied_requests(self) -> int:
        log = self.dir / "access.log"
        return sum(1 for line in log.read_text().splitlines() if "http://127.0.0.1" in line) if log.exists() else 0

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def proxy(es_node: "esnode.NodeProcess", tmp_path: Path) -> Iterator[Proxy]:
    need_tool("nginx")
    need_tool("openssl")
    p = Proxy(tmp_path, es_node.url())
    try:
        yield p
    finally:
        p.close()


def _cloud_config(proxy: Proxy, auth: str, **es: object) -> ElasticsearchConfig:
    raw: dict = {"cloud": {"id": proxy.cloud_id(), "auth": auth},
                 "output": {"elasticsearch": {"ssl": {"certificate_authorities": [proxy.ca]}, **es}}}
    apply_cloud(raw)
    assert raw["output"]["elasticsearch"]["hosts"] == [f"https://127.0.0.1:{proxy.tls_port}"]
    return ElasticsearchConfig.model_validate(raw["output"]["elasticsearch"])


def test_cloud_id_tls_and_basic_auth_through_nginx(proxy: Proxy, es_node: "esnode.NodeProcess") -> None:
    """Events reach the node through TLS (verified against the test CA) and basic auth, with the
    host and credentials coming from cloud.id / cloud.auth."""
    cfg = _cloud_config(proxy, "elastic:s3cret", index="pbtls", compression_level=3, bulk_max_size=500)
    h = Harness(cfg.model_dump(exclude_unset=True))
    n = 3000
    h.feed([dns_event(i, TS0) for i in range(n)])
    assert h.close(120)
    st = h.runner.stats()
    assert st["events.acked"] + st["events.duplicates"] == n and st["events.dropped"] == 0, (st, h.stats)
    assert count(es_node.url(), "pbtls") == n


def test_test_output_walks_through_tls_auth_and_version(proxy: Proxy) -> None:
    """`test output` prints each step (dns, dial, TLS handshake, talk to server, version) and
    passes; a wrong password or an untrusted CA make it fail at the right step."""
    out = io.StringIO()
    assert run_test_output(_cloud_config(proxy, "elastic:s3cret"), BEAT, out), out.getvalue()
    text = out.getvalue()
    for step in ("dns lookup... OK", "dial up... OK", "handshake... OK", "TLS version: TLSv1.", "talk to server... OK",
                 "version: 7.17.28"):
        assert step in text, text
    out = io.StringIO()
    assert not run_test_output(_cloud_config(proxy, "elastic:wrong"), BEAT, out)
    assert "talk to server... ERROR HTTP 401" in out.getvalue(), out.getvalue()
    raw: dict = {"cloud": {"id": proxy.cloud_id(), "auth": "elastic:s3cret"}, "output": {"elasticsearch": {}}}
    apply_cloud(raw)
    out = io.StringIO()
    assert not run_test_output(ElasticsearchConfig.model_validate(raw["output"]["elasticsearch"]), BEAT, out)
    assert "handshake... ERROR" in out.getvalue() and "CERTIFICATE_VERIFY_FAILED" in out.getvalue(), out.getvalue()


def test_wrong_password_is_retried_not_dropped(proxy: Proxy) -> None:
    """A 401 is a connection-level failure: the output keeps retrying with backoff and drops
    nothing (events stay queued until credentials work or the agent stops)."""
    cfg = _cloud_config(proxy, "elastic:wrong", index="pbtls-denied", backoff={"init": "50ms", "max": "200ms"})
    h = Harness(cfg.model_dump(exclude_unset=True))
    h.feed([dns_event(i, TS0) for i in range(50)])
    time.sleep(1.5)
    assert h.stats.get("connection_errors", 0) >= 2, h.stats
    assert h.stats.get("acked", 0) == 0
    assert not h.close(1.0)  # still undelivered when the agent gives up at shutdown...
    assert h.runner.stats()["events.acked"] == 0  # ...and none was claimed delivered


def test_proxy_url(proxy: Proxy, es_node: "esnode.NodeProcess") -> None:
    """proxy_url sends every request through the HTTP proxy."""
    h = Harness({"hosts": [es_node.url()], "proxy_url": f"http://127.0.0.1:{proxy.http_port}", "index": "pbproxy",
                 "compression_level": 0})
    h.feed([dns_event(i, TS0) for i in range(500)])
    assert h.close(60)
    assert count(es_node.url(), "pbproxy") == 500
    assert proxy.proxied_requests() >= 2  # GET / and at least one _bulk went through nginx


def test_cloud_id_with_api_key(proxy: Proxy, es_node: "esnode.NodeProcess") -> None:
    """cloud.id without cloud.auth plus output.elasticsearch.api_key: the key is sent as
    ``ApiKey base64(id:key)`` over TLS and events are indexed; a wrong key is refused (401)."""
    def config(key: str) -> ElasticsearchConfig:
        raw: dict = {"cloud": {"id": proxy.cloud_id(proxy.apikey_port)}, "output": {"elasticsearch": {
            "api_key": key, "index": "pbapikey", "ssl": {"certificate_authorities": [proxy.ca]}}}}
        apply_cloud(raw)
        return ElasticsearchConfig.model_validate(raw["output"]["elasticsearch"])

    h = Harness(config(API_KEY).model_dump(exclude_unset=True))
    h.feed([dns_event(i, TS0) for i in range(1000)])
    assert h.close(60)
    assert count(es_node.url(), "pbapikey") == 1000
    out = io.StringIO()
    assert not run_test_output(config("pybeat-key-id:wrong"), BEAT, out)
    assert "talk to server... ERROR HTTP 401" in out.getvalue(), out.getvalue()


def test_client_certificate_and_verification_modes(proxy: Proxy, es_node: "esnode.NodeProcess") -> None:
    """ssl.certificate/ssl.key authenticate the agent to a server that requires a client
    certificate; verification_mode full refuses a host name the server certificate lacks,
    certificate accepts it (chain still checked), none accepts anything."""
    tls = {"certificate_authorities": [proxy.ca], "certificate": str(proxy.dir / "client.pem"),
           "key": str(proxy.dir / "client.key")}

    def walk(host: str, **ssl: object) -> tuple[bool, str]:
        out = io.StringIO()
        cfg = ElasticsearchConfig.model_validate({"hosts": [f"https://{host}:{proxy.mtls_port}"], "ssl": {**tls, **ssl}})
        return run_test_output(cfg, BEAT, out), out.getvalue()

    ok, text = walk("127.0.0.1")
    assert ok, text
    ok, text = walk("127.0.0.1", certificate=None, key=None)
    assert not ok and "400" in text, text  # nginx: "No required SSL certificate was sent"
    ok, text = walk("127.0.0.2")
    assert not ok and "handshake... ERROR" in text and "mismatch" in text.lower(), text
    ok, text = walk("127.0.0.2", verification_mode="certificate")
    assert ok and "host name verification is DISABLED" in text, text
    ok, text = walk("127.0.0.2", verification_mode="none", certificate_authorities=[])
    assert ok, text

    h = Harness({"hosts": [f"https://127.0.0.2:{proxy.mtls_port}"], "index": "pbmtls", "compression_level": 0,
                 "ssl": {**tls, "verification_mode": "certificate"}})
    h.feed([dns_event(i, TS0) for i in range(500)])
    assert h.close(60)
    assert count(es_node.url(), "pbmtls") == 500
