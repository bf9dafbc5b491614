"""Site C of the per-site example (docs/examples/sites): Logstash with mutual TLS and an
encrypted client key whose passphrase is in the keystore, against a real go-lumber receiver
that requires a client certificate from the test CA. Only the address and the certificate
paths are overridden with -E."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.config.sites import SECRETS, make_keystore, run_site

pytestmark = pytest.mark.integration

EVENTS = 120  # dns_udp_mixed.pcap: 118 DNS transactions and 2 ICMP ones


def test_site_c_logstash_with_mutual_tls(receivers: Any, certs: dict[str, Path], tmp_path: Path) -> None:
    key = tmp_path / "client-encrypted.key"
    subprocess.run(["openssl", "pkey", "-in", str(certs["client.key"]), "-aes256", "-passout",
                    f"pass:{SECRETS['c']['SITE_C_KEY_PASSPHRASE']}", "-out", str(key)], check=True, timeout=60)
    recv = receivers("site-c", tls_cert=certs["server.crt"], tls_key=certs["server.key"], tls_client_ca=certs["ca.crt"])
    make_keystore(tmp_path / "data", SECRETS["c"])
    out = run_site("c", tmp_path, f'output.logstash.hosts=["{recv.address}"]',
                   f'output.logstash.ssl.certificate_authorities=["{certs["ca.crt"]}"]',
                   f"output.logstash.ssl.certificate={certs['client.crt']}", f"output.logstash.ssl.key={key}")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(line) for line in recv.lines()]
    assert len(lines) == EVENTS
    assert {e["observer"]["name"] for e in lines} == {"sensor-site-c"}
    assert all("site-c" in e["tags"] for e in lines)
    assert {e["@metadata"]["beat"] for e in lines} == {"packetbeat-site-c"}
