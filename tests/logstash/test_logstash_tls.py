"""TLS between the Logstash output and a real go-lumber receiver: delivery, and every common
mistake reported by name instead of "connection reset"."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from pybeat.api import Batch, BeatInfo, Event, OutputContext
from pybeat.outputs.logstash.config import LogstashConfig
from pybeat.outputs.logstash.connection import ConnectError, Connection
from pybeat.outputs.logstash.plugin import plugin
from pybeat.outputs.logstash.tls import build_tls
from tests.logstash.agent_run import run_agent
from lumber_receiver import wait_for

pytestmark = pytest.mark.integration


def _tls_receiver(receivers: Any, certs: dict[str, Path], **kw: Any) -> Any:
    return receivers(tls_cert=certs["server.crt"], tls_key=certs["server.key"], **kw)


def _connect(address: str, ssl: dict[str, Any] | None, host: str | None = None) -> Connection:
    raw: dict[str, Any] = {"hosts": [address], "timeout": "5s"}
    if ssl is not None:
        raw["ssl"] = ssl
    cfg = LogstashConfig.model_validate(raw)
    h, port = cfg.addresses[0]
    conn = Connection(host or h, port, cfg.timeout, tls=build_tls(cfg.ssl) if cfg.tls_enabled else None)
    conn.connect()
    return conn


def _error(address: str, ssl: dict[str, Any] | None, host: str | None = None) -> str:
    with pytest.raises(ConnectError) as info:
        _connect(address, ssl, host).close()
    return str(info.value)


def test_tls_capture_events_arrive_intact(tmp_path: Path, receivers: Any, certs: dict[str, Path]) -> None:
    """With ssl.certificate_authorities and full verification, every capture event arrives once."""
    r = _tls_receiver(receivers, certs)
    run = run_agent(
        # bulk_max_size 100: the 520 events need several batches whatever the timing (a fast
        # agent otherwise queues them all before the output takes its first batch).
        tmp_path, {"hosts": [r.address], "ssl": {"certificate_authorities": [str(certs["ca.crt"])]},
                   "backoff": {"init": "50ms", "max": "500ms"}, "bulk_max_size": 100},
        "icmp.pcap", loops=10, extra={"queue.mem": {"events": 1000, "flush.min_events": 100, "flush.timeout": "50ms"}},
    )
    assert run.proc.returncode == 0, run.log_tail()
    sent = run.file_lines()
    assert wait_for(lambda: r.count() >= len(sent), 5)
    assert sorted(r.lines()) == sorted(sent)
    m = run.metrics
    assert m["output.logstash.batches.acked"] > 1
    assert m["output.logstash.connections.opened"] == 1  # no reconnect per batch (TLS 1.3 tickets)
    assert any(e.get("tls") is True for e in run.log_events() if e.get("event") == "connected to logstash")


def test_tls_with_client_certificate(receivers: Any, certs: dict[str, Path]) -> None:
    """A receiver that requires client certificates accepts ssl.certificate/ssl.key and names the
    cause when they are missing."""
    r = _tls_receiver(receivers, certs, tls_client_ca=certs["ca.crt"])
    ok = {"certificate_authorities": [str(certs["ca.crt"])], "certificate": str(certs["client.crt"]),
          "key": str(certs["client.key"])}
    ctx = OutputContext(beat=BeatInfo(version="8.0.0"), metrics=None, logger=None, name="logstash")
    client = plugin.create(LogstashConfig.model_validate({"hosts": [r.address], "ssl": ok}), ctx).clients[0]
    settled: list[tuple[int, int]] = []
    batch = Batch([Event(0, {"n": i}) for i in range(3)], lambda b, a, d, rt, cn, dr: settled.append((a + d, len(rt) + len(cn))))
    client.publish(batch)
    client.close()
    assert settled == [(3, 0)]
    # Without a client certificate (TLS 1.3: the refusal comes with the first read).
    errors: list[str] = []

    class Log:
        def error(self, msg: str, **kv: Any) -> None:
            errors.append(str(kv.get("error")))

        info = warning = error

    ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=Log(), name="logstash")
    cfg = {"hosts": [r.address], "ssl": {"certificate_authorities": [str(certs["ca.crt"])]}, "max_retries": 0,
           "backoff": {"init": "10ms"}}
    client = plugin.create(LogstashConfig.model_validate(cfg), ctx).clients[0]
    settled = []
    client.publish(Batch([Event(0, {"n": 1})], lambda b, a, d, rt, cn, dr: settled.append((a + d, len(rt) + len(cn)))))
    client.close()
    assert settled == [(0, 1)]  # retried, not dropped, although max_retries is 0
    assert any("client certificate" in e for e in errors), errors


def test_unknown_ca_is_named(receivers: Any, certs: dict[str, Path]) -> None:
    """A server certificate from a CA we were not given: 'unknown CA'."""
    r = _tls_receiver(receivers, certs)
    msg = _error(r.address, {"certificate_authorities": [str(certs["other-ca.crt"])]})
    assert "unknown CA" in msg and r.address in msg, msg


def test_hostname_mismatch_is_named(receivers: Any, certs: dict[str, Path]) -> None:
    """A certificate (from the trusted CA) issued for another name than the one dialled:
    'hostname mismatch'; verification_mode: certificate accepts it (the chain is still checked)."""
    r = receivers(tls_cert=certs["wrong-name.crt"], tls_key=certs["wrong-name.key"])
    ssl = {"certificate_authorities": [str(certs["ca.crt"])]}
    msg = _error(r.address, ssl)
    assert "hostname mismatch" in msg and "127.0.0.1" in msg, msg
    _connect(r.address, {**ssl, "verification_mode": "certificate"}).close()
    msg = _error(r.address, {**ssl, "verification_mode": "certificate", "certificate_authorities": [
        str(certs["other-ca.crt"])]})
    assert "unknown CA" in msg, msg


def test_tls_client_to_plain_receiver_is_named(receivers: Any, certs: dict[str, Path]) -> None:
    """ssl configured but the receiver speaks plain Lumberjack: the handshake is refused, and the
    message says the beats input may not have ssl enabled."""
    r = receivers()
    msg = _error(r.address, {"certificate_authorities": [str(certs["ca.crt"])]})
    assert "handshake refused" in msg and "ssl enabled" in msg, msg


def test_plain_client_to_tls_receiver_is_named(receivers: Any, certs: dict[str, Path]) -> None:
    """No ssl configured but the receiver wants TLS: the batch is retried and the error says to
    configure output.logstash.ssl."""
    r = _tls_receiver(receivers, certs)
    errors: list[str] = []

    class Log:
        def error(self, msg: str, **kv: Any) -> None:
            errors.append(str(kv.get("error")))

        info = warning = error

    ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=Log(), name="logstash")
    client = plugin.create(LogstashConfig.model_validate({"hosts": [r.address], "backoff": {"init": "10ms"}}), ctx).clients[0]
    settled: list[tuple[int, int]] = []
    client.publish(Batch([Event(0, {"n": 1})], lambda b, a, d, rt, cn, dr: settled.append((a + d, len(rt) + len(cn)))))
    client.close()
    assert settled == [(0, 1)]
    assert any("output.logstash.ssl" in e for e in errors), errors


def test_ca_sha256_pin(receivers: Any, certs: dict[str, Path]) -> None:
    """ssl.ca_sha256 pinning the CA's key connects; a wrong pin is refused as a pin mismatch."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    r = _tls_receiver(receivers, certs)
    ca = x509.load_pem_x509_certificate(certs["ca.crt"].read_bytes())
    spki = ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    ssl = {"certificate_authorities": [str(certs["ca.crt"])]}
    _connect(r.address, {**ssl, "ca_sha256": pin}).close()
    msg = _error(r.address, {**ssl, "ca_sha256": base64.b64encode(b"x" * 32).decode()})
    assert "pin mismatch" in msg, msg


def test_cli_test_output_shows_tls_steps_and_causes(tmp_path: Path, receivers: Any, certs: dict[str, Path]) -> None:
    """``pybeat test output`` dials each host: TLS version on success, the named cause on failure."""
    import os
    import subprocess
    import sys

    import yaml

    r = _tls_receiver(receivers, certs)
    results = {}
    for name, ca in (("good", "ca.crt"), ("bad", "other-ca.crt")):
        cfg = tmp_path / f"{name}.yml"
        cfg.write_text(yaml.safe_dump({
            "packetbeat.protocols": [{"type": "icmp"}],
            "output.logstash": {"hosts": [r.address], "ssl": {"certificate_authorities": [str(certs[ca])]}},
        }))
        os.chmod(cfg, 0o600)
        results[name] = subprocess.run([sys.executable, "-m", "pybeat.cli", "-c", str(cfg), "test", "output"],
                                       capture_output=True, text=True, timeout=60)
    good, bad = results["good"], results["bad"]
    assert good.returncode == 0 and "TLS version: TLSv1.3" in good.stdout, good.stdout + good.stderr
    assert bad.returncode == 1 and "unknown CA" in bad.stdout, bad.stdout + bad.stderr


def test_beats_cipher_suite_names_and_protocol_versions(receivers: Any, certs: dict[str, Path]) -> None:
    """``cipher_suites`` in Beats' spelling with ``supported_protocols: [TLSv1.2]`` negotiates that
    suite; a receiver that only speaks TLS 1.3 to a TLS 1.2-only client is 'no TLS version in common'."""
    r = _tls_receiver(receivers, certs)
    ssl = {"certificate_authorities": [str(certs["ca.crt"])], "supported_protocols": ["TLSv1.2"],
           "cipher_suites": ["ECDHE-RSA-AES-256-GCM-SHA384"]}
    conn = _connect(r.address, ssl)
    sock: Any = conn.sock
    assert sock.version() == "TLSv1.2" and sock.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    conn.close()
    r13 = _tls_receiver(receivers, certs, tls_min_version="1.3")
    msg = _error(r13.address, {"certificate_authorities": [str(certs["ca.crt"])], "supported_protocols": ["TLSv1.2"]})
    assert "no TLS version or cipher suite in common" in msg, msg


def test_expired_certificate_is_named(receivers: Any, certs: dict[str, Path]) -> None:
    """A server certificate past its end date: 'has expired'."""
    r = receivers(tls_cert=certs["expired.crt"], tls_key=certs["expired.key"])
    msg = _error(r.address, {"certificate_authorities": [str(certs["ca.crt"])]})
    assert "has expired" in msg, msg


def test_ca_trusted_fingerprint_learns_the_ca_from_the_chain(receivers: Any, certs: dict[str, Path]) -> None:
    """``ssl.ca_trusted_fingerprint`` (hex SHA-256 of the CA certificate, colons allowed): a
    server that sends its CA along is verified against it; a wrong fingerprint, or a server
    that does not send the CA, is 'unknown CA'."""
    import ssl as _ssl

    der = _ssl.PEM_cert_to_DER_cert(certs["ca.crt"].read_text())
    digest = hashlib.sha256(der).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    chained = receivers("chained", tls_cert=certs["server-chain.crt"], tls_key=certs["server.key"])
    s_cfg = {"ca_trusted_fingerprint": fingerprint}
    ctx = OutputContext(beat=BeatInfo(), metrics=None, logger=None, name="logstash")
    client = plugin.create(LogstashConfig.model_validate({"hosts": [chained.address], "ssl": s_cfg}), ctx).clients[0]
    settled: list[tuple[int, int]] = []
    for _ in range(2):  # the second batch reuses the learned CA
        client.publish(Batch([Event(0, {"n": 1})], lambda b, a, d, rt, cn, dr: settled.append((a + d, len(rt) + len(cn)))))
    client.close()
    assert settled == [(1, 0), (1, 0)]
    msg = _error(chained.address, {"ca_trusted_fingerprint": "00" * 32})
    assert "unknown CA" in msg and "ca_trusted_fingerprint" in msg, msg
    leaf_only = _tls_receiver(receivers, certs)
    msg = _error(leaf_only.address, s_cfg)
    assert "unknown CA" in msg, msg
