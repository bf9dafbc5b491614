"""The per-site example (docs/examples/sites): one base config plus a site file, secrets in a
keystore, run through the real command line. Shared by the validation tests here and the
runs against real servers in tests/elasticsearch and tests/logstash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PCAPS, REPO

SITES = REPO / "docs" / "examples" / "sites"
SITE_FILES = {"a": "site-a-elasticsearch.yml", "b": "site-b-cloud.yml", "c": "site-c-logstash.yml"}
#: what each site's keystore holds (a test's own values)
SECRETS = {"a": {"SITE_A_ES_PWD": "s3cret"}, "b": {"SITE_B_CLOUD_AUTH": "elastic:s3cret"},
           "c": {"SITE_C_KEY_PASSPHRASE": "site-c-key-pass"}}


def pybeat(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PYBEAT_", "MIRROR_"))}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "pybeat.cli", *args], input=stdin, capture_output=True, text=True,
                          env=e, cwd=REPO, timeout=timeout)


def make_keystore(data: Path, secrets: dict[str, str]) -> None:
    assert pybeat("keystore", "create", "--path.data", str(data)).returncode == 0
    for key, value in secrets.items():
        out = pybeat("keystore", "add", key, "--stdin", "--path.data", str(data), stdin=value)
        assert out.returncode == 0, out.stderr


def site_args(site: str, data: Path, *extra: str) -> list[str]:
    """``-c base.yml -c site-….yml`` with path.config at the example (its pybeat.d) and a data dir."""
    return ["-c", str(SITES / "base.yml"), "-c", str(SITES / SITE_FILES[site]), "--path.config", str(SITES),
            "--path.data", str(data), *extra]


def run_site(site: str, tmp: Path, *overrides: str, capture: str = "dns_udp_mixed.pcap") -> subprocess.CompletedProcess[str]:
    """Replay a capture with a site's config (``overrides``: ``-E`` settings pointing it at the
    test's servers) and return the finished run."""
    args = ["run", *site_args(site, tmp / "data"), "--path.logs", str(tmp / "logs"), "-I", str(PCAPS / capture), "-t"]
    for setting in overrides:
        args += ["-E", setting]
    return pybeat(*args)
