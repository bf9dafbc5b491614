"""Planted secrets never come out: not on stdout or stderr of any command (`export config`,
`test config`, `test output`, `run`), not in log files at debug level, not in config error
messages. One masking rule (pybeat/secrets.py) covers passwords, API keys, tokens,
passphrases, header and parameter values, userinfo in URLs, inline PEM keys and cloud.auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pybeat import secrets
from tests.conftest import PCAPS, REPO

MARK = "Plant"  # every planted secret contains it; nothing else in these runs does

PLANTED = """
packetbeat.protocols: [{type: dns, ports: [53]}]
packetbeat.shutdown_timeout: 1s
output.elasticsearch:
  enabled: ${ES_ON:true}
  hosts: ["http://esuser:HostPw-Plant1@127.0.0.1:9"]
  username: elastic
  password: "${ES_PWD}"
  proxy_url: "http://proxyuser:ProxyPw-Plant2@127.0.0.1:9"
  headers: {Authorization: "Bearer HeaderTok-Plant3"}
  proxy_headers: {Proxy-Authorization: "Basic ProxyHdr-Plant5"}
  parameters: {token: ParamTok-Plant4}
  timeout: 1s
  max_retries: 0
output.logstash:
  enabled: ${LS_ON:true}
  hosts: ["127.0.0.1:9"]
  timeout: 1s
  ssl:
    certificate: |
      -----BEGIN CERTIFICATE-----
      MIIBCertBody
      -----END CERTIFICATE-----
    key: |
      -----BEGIN PRIVATE KEY-----
      PemBody-Plant10
      -----END PRIVATE KEY-----
    key_passphrase: KeyPass-Plant6
output.file:
  enabled: ${FILE_ON:false}
  path: ${OUT_DIR:/nonexistent}
setup.kibana: {host: "http://kuser:KibanaPw-Plant7@127.0.0.1:5601", password: KibanaPw2-Plant8}
monitoring.elasticsearch.api_key: "MonKey-Plant9"
"""

#: Elastic Cloud replaces output.elasticsearch.hosts and excludes the Logstash output (as in Beats)
CLOUD = PLANTED.replace("${LS_ON:true}", "false").replace("${FILE_ON:false}", "false") + """
cloud.id: "site:bG9jYWxob3N0LmludmFsaWQkZXMxMjMkazEyMw=="
cloud.auth: "elastic:CloudPw-Plant13"
"""

BROKEN = """
output.elasticsearch:
  hosts: {bad: 5}  # (a bare 5 is the host "5", as go-ucfg reads it)
  password: {nested: NestedPw-Plant11}
  api_key: [ApiKeyList-Plant14]
  timeout: "http://u:UrlInError-Plant15@h"
output.logstash:
  hosts: ["127.0.0.1:9"]
  ssl.key: ["-----BEGIN RSA PRIVATE KEY-----\\nPemList-Plant12\\n-----END RSA PRIVATE KEY-----"]
  ssl.key_passphrase: {a: KeyPassDict-Plant16}
"""


@pytest.fixture
def site(tmp_path):
    """A config dir with the planted config, a keystore holding ES_PWD, and the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYBEAT_")}
    env["PYBEAT_KEYSTORE_PASSPHRASE"] = "Passphrase-Plant17"
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(PLANTED)
    cfg.chmod(0o600)
    cloud = tmp_path / "cloud.yml"
    cloud.write_text(CLOUD)
    cloud.chmod(0o600)
    run(["keystore", "create", "--path.data", str(tmp_path / "data")], env)
    add = run(["keystore", "add", "ES_PWD", "--stdin", "--path.data", str(tmp_path / "data")], env,
              stdin="Keystore-Plant0")
    assert add.returncode == 0, add.stderr
    return tmp_path, cfg, env


def run(args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybeat.cli", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=timeout, cwd=REPO)


def leaks(*texts: str) -> list[str]:
    return sorted({word for text in texts for word in text.replace('"', " ").split() if MARK in word})


@pytest.mark.parametrize("name", ["pybeat.yml", "cloud.yml"])
def test_export_config_masks_every_planted_secret(site, name):
    tmp, _, env = site
    out = run(["export", "config", "-c", str(tmp / name), "--path.data", str(tmp / "data")], env)
    assert out.returncode == 0, out.stderr
    assert leaks(out.stdout, out.stderr) == []
    assert "[redacted]" in out.stdout and "127.0.0.1:9" in out.stdout  # masked, not dropped


def test_test_config_and_test_output_print_no_secret(site):
    tmp, cfg, env = site
    checked = run(["test", "config", "-c", str(cfg), "--path.data", str(tmp / "data")], env)
    assert checked.returncode == 0, checked.stderr
    cloud = run(["test", "config", "-c", str(tmp / "cloud.yml"), "--path.data", str(tmp / "data")], env)
    assert cloud.returncode == 0, cloud.stderr
    # (not test output with cloud.yml: it would resolve the made-up Cloud host)
    tested = run(["test", "output", "-c", str(cfg), "--path.data", str(tmp / "data")], env)
    assert "elasticsearch" in tested.stdout and "proxy" in tested.stdout
    assert leaks(checked.stdout, checked.stderr, cloud.stdout, cloud.stderr, tested.stdout, tested.stderr) == []


def test_a_run_at_debug_level_logs_no_secret(site):
    tmp, cfg, env = site
    env = dict(env, ES_ON="false", LS_ON="false", FILE_ON="true", OUT_DIR=str(tmp / "out"))
    out = run(["run", "-c", str(cfg), "-I", str(PCAPS / "dns_tcp.pcap"), "-t", "-d", "*",
               "--path.data", str(tmp / "data"), "--path.logs", str(tmp / "logs")], env)
    assert out.returncode == 0, out.stderr
    logs = [p.read_text() for p in (tmp / "logs").glob("*")]
    assert logs and any('"event": "started"' in text for text in logs)  # at -d "*", as debug as it gets
    assert leaks(out.stdout, out.stderr, *logs) == []


def test_config_errors_name_keys_but_print_no_secret(site):
    tmp, _, env = site
    bad = tmp / "bad.yml"
    bad.write_text(BROKEN)
    bad.chmod(0o600)
    out = run(["test", "config", "-c", str(bad)], env)
    assert out.returncode == 1
    for key in ("output.elasticsearch.hosts", "output.elasticsearch.password", "output.elasticsearch.api_key",
                "output.logstash.ssl.key"):
        assert key in out.stderr
    assert leaks(out.stdout, out.stderr) == []


def test_the_keystore_file_holds_no_value_in_clear_and_is_0600(site):
    tmp, _, env = site
    store = tmp / "data" / "pybeat.keystore"
    assert MARK.encode() not in store.read_bytes() and (store.stat().st_mode & 0o777) == 0o600
    listed = run(["keystore", "list", "--path.data", str(tmp / "data")], env)
    assert listed.stdout.split() == ["ES_PWD"] and leaks(listed.stdout, listed.stderr) == []


def test_log_lines_are_masked_at_every_level(tmp_path):
    from pybeat.logs import setup_logging

    secrets.remember(["Remembered-Plant20"])
    try:
        log = setup_logging(level="debug", logs_dir=str(tmp_path), name="t", json_format=True)
        log.debug("connecting", url="https://u:UrlPw-Plant21@es:9200", password="Pw-Plant22")
        log.info("loaded Remembered-Plant20 from the keystore")
        log.warning("header", headers={"Authorization": "ApiKey Hdr-Plant23"})
        try:
            raise RuntimeError("POST http://u:ExcPw-Plant24@h/_bulk failed")
        except RuntimeError:
            log.exception("bulk failed")
        log.error("key", ssl={"key": "-----BEGIN EC PRIVATE KEY-----\nPem-Plant25\n-----END EC PRIVATE KEY-----"})
    finally:
        secrets.forget_all()
    text = "".join(p.read_text() for p in tmp_path.glob("t-*.ndjson"))
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 5 and leaks(text) == []
    assert "RuntimeError" in lines[3]["exception"]  # the traceback is kept, masked


@pytest.mark.parametrize("tree,expected", [
    ({"password": "x1"}, {"password": "[redacted]"}),
    ({"cloud": {"auth": "u:p"}}, {"cloud": {"auth": "[redacted]"}}),
    ({"api_key": "id:key", "token": "t", "secret_token": "s", "key_passphrase": "k"},
     {"api_key": "[redacted]", "token": "[redacted]", "secret_token": "[redacted]", "key_passphrase": "[redacted]"}),
    ({"headers": {"X-Any": "v"}, "proxy_headers": {"P": "v"}, "parameters": {"p": "v"}},
     {"headers": {"X-Any": "[redacted]"}, "proxy_headers": {"P": "[redacted]"}, "parameters": {"p": "[redacted]"}}),
    ({"hosts": ["https://u:p@h:9200", "h2:9200"], "proxy_url": "socks5://u:p@s:1080"},
     {"hosts": ["https://[redacted]@h:9200", "h2:9200"], "proxy_url": "socks5://[redacted]@s:1080"}),
    ({"ssl": {"key": "/etc/pki/client/cert.key"}}, {"ssl": {"key": "/etc/pki/client/cert.key"}}),
    ({"ssl": {"key": "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----\n"}},
     {"ssl": {"key": "[redacted] private key\n"}}),
    ({"url": "https://h/?api_key=abc&x=1"}, {"url": "https://h/?api_key=[redacted]&x=1"}),
])
def test_the_masking_rule(tree, expected):
    assert secrets.mask_tree(tree) == expected


def test_redact_url_and_scrub():
    assert secrets.redact_url("http://user:pw@host:80/p") == "http://[redacted]@host:80/p"
    assert secrets.redact_url("user:pw@host:5044") == "[redacted]@host:5044"
    assert secrets.redact_url("https://host:9200") == "https://host:9200"
    assert secrets.scrub("Authorization: Basic dXNlcjpwYXNz") == "Authorization: Basic [redacted]"
