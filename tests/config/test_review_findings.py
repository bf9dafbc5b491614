"""What a user-level review found (2026-12-03): bad output hosts pass `test config` and `run`
then prints the password; a Logstash host with userinfo is printed in the summary; zero or
negative durations switch detectors off silently; an unwritable path.data is noticed only at
the end; single values where Beats takes a list (go-ucfg's castArr) and unquoted numbers where
it takes a string are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PCAPS, REPO

SECRET = "Leak2Secret"
SAMPLE = REPO / "packaging" / "sample" / "dns.pcap"


def pybeat(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yml"
    cfg.write_text(config)
    cfg.chmod(0o600)
    return subprocess.run([sys.executable, "-m", "pybeat.cli", "-c", str(cfg), "--path.home", str(tmp_path),
                           "--path.data", str(tmp_path / "data"), "--path.logs", str(tmp_path / "logs"), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("host", [
    f"https://u:{SECRET}@127.0.0.1:notaport",
    f"https://u:{SECRET}@127.0.0.1:99999",
    f"ftp://u:{SECRET}@127.0.0.1:9200",
])
def test_a_bad_elasticsearch_host_fails_test_config_without_its_password(tmp_path: Path, host: str) -> None:
    config = "packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.elasticsearch:\n" \
             f"  hosts: [{json.dumps(host)}]\n"
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "output.elasticsearch.hosts" in checked.stderr and "c.yml:" in checked.stderr
    run = pybeat(tmp_path, config, "run", "-I", str(SAMPLE), "-t")
    assert run.returncode == 1
    for out in (checked, run):
        assert SECRET not in out.stdout + out.stderr


def test_a_logstash_host_with_userinfo_is_refused_without_its_password(tmp_path: Path) -> None:
    config = "packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.logstash:\n" \
             f"  hosts: [\"u:{SECRET}@127.0.0.1:5044\"]\n"
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1 and "output.logstash.hosts" in checked.stderr
    assert SECRET not in checked.stdout + checked.stderr


def test_the_summary_never_prints_a_remembered_secret(tmp_path: Path) -> None:
    """A file output whose path holds the password of another output: the summary's
    'written to' line is masked like every other line pybeat prints."""
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\n"
              f"output.file: {{path: {json.dumps(str(tmp_path / ('out-' + SECRET)))}}}\n"
              f"output.console: {{enabled: false, password: {SECRET}}}\n")
    run = pybeat(tmp_path, config, "run", "-I", str(SAMPLE), "-t")
    assert "pybeat summary" in run.stdout, run.stderr
    assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize("key,value", [
    ("pybeat.detection.dns.tunnel.window", "0s"),
    ("pybeat.detection.dns.tunnel.window", "-5s"),
    ("packetbeat.flows.timeout", "-5s"),
])
def test_a_duration_that_must_be_positive_is_an_error(tmp_path: Path, key: str, value: str) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\npacketbeat.flows: {}\n"
              "pybeat.detection.dns: {enabled: true}\noutput.file: {path: out}\n")
    checked = pybeat(tmp_path, config, "test", "config", "-E", f"{key}={value}")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert key.split(".", 1)[1] in checked.stderr and "greater than 0" in checked.stderr


def test_flows_period_minus_one_still_means_final_reports_only(tmp_path: Path) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\npacketbeat.flows: {period: -1s}\n"
              "output.file: {path: out}\n")
    assert pybeat(tmp_path, config, "test", "config").returncode == 0


def test_an_unwritable_path_data_stops_the_agent_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("")
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\n"
              "pybeat.detection.dns: {enabled: true}\noutput.file: {path: out}\n")
    run = pybeat(tmp_path, config, "run", "-I", str(SAMPLE), "-t", "--path.data", str(blocker / "data"))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "path.data" in run.stderr and "Traceback" not in run.stderr
    assert "pybeat summary" not in run.stdout


def test_single_values_are_lists_and_numbers_are_strings_as_in_beats(tmp_path: Path) -> None:
    """go-ucfg turns a single value into a one-item list where a list is expected, and reads
    an unquoted number as text where text is expected; Packetbeat configs rely on both."""
    config = ("packetbeat.protocols:\n- type: dns\n  ports: 53\n  tags: one\n"
              "pybeat.detection.dns: {enabled: true, protected_domains: example.test}\n"
              "tags: site-a\n"
              "output.elasticsearch: {enabled: false, hosts: localhost:9200, username: u, password: 12345678}\n"
              "output.file: {path: out}\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 0, checked.stderr
    exported = pybeat(tmp_path, config, "export", "config")
    assert "12345678" not in exported.stdout
    run = pybeat(tmp_path, config, "run", "-I", str(PCAPS / "dns_tunnel_iodine.pcap"), "-t")
    assert run.returncode == 0, run.stderr
    docs = [json.loads(line) for f in (tmp_path / "out").glob("*.ndjson") for line in f.read_text().splitlines()]
    dns = [d for d in docs if d.get("type") == "dns"]
    assert dns and all(d["tags"] == ["site-a", "one"] or set(d["tags"]) == {"site-a", "one"} for d in dns)


@pytest.mark.parametrize("namespace", ["pybeat", "packetbeat"])
@pytest.mark.parametrize("bad", ["http://corp.test/login", "*.corp.test", "corp.test:443", "corp", "-corp.test",
                                 "ex\u00b2mple.com", "10.0.0.1"])
def test_a_protected_domain_that_is_not_a_domain_is_refused_under_the_name_it_was_written(
        tmp_path: Path, namespace: str, bad: str) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file: {path: out}\n"
              f"{namespace}.detection.dns:\n  enabled: true\n  protected_domains: [example.test, {json.dumps(bad)}]\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    line = next(x for x in checked.stderr.splitlines() if "protected_domains" in x).strip()
    assert line.startswith(f"{namespace}.detection.dns.protected_domains (c.yml:5): {bad!r} is not a registered domain")
    assert "Value error" not in line and "got a list" not in line


def test_protected_domains_take_idn_names_in_their_letters_or_as_punycode(tmp_path: Path) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file: {path: out}\n"
              "pybeat.detection.dns:\n  enabled: true\n  protected_domains: [Bücher.example, xn--bcher-kva.test, a-b.co.uk]\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_key_set_through_packetbeat_is_named_packetbeat_beside_a_pybeat_one(tmp_path: Path) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file: {path: out}\n"
              "pybeat.detection.dns:\n  enabled: true\n"
              "packetbeat.detection_process: sometimes\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1
    assert "packetbeat.detection_process (c.yml:5)" in checked.stderr, checked.stderr


def test_every_problem_of_a_config_is_listed_in_the_order_of_its_lines(tmp_path: Path) -> None:
    config = ("packetbeat.protocols:\n- type: dns\n  ports: [53]\n  send_request: maybe\n"
              "pybeat.detection.dns:\n  enabled: true\n  protected_domains: [\"http://x\"]\n"
              "output.file: {path: out, rotate_every_kb: -5}\npacketbeat.workers: lots\nlogging.level: loud\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1
    lines = [int(x.split("(c.yml:")[1].split(")")[0]) for x in checked.stderr.splitlines() if "(c.yml:" in x]
    assert lines == [4, 7, 8, 9, 10], checked.stderr


def test_a_key_written_under_packetbeat_is_named_so_though_its_parent_is_also_set_under_pybeat(tmp_path: Path) -> None:
    config = ("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file: {path: out}\n"
              "pybeat.detection.dns:\n  enabled: true\n"
              "packetbeat.detection.dns:\n  protected_domains: [\"http://x.test\"]\n")
    checked = pybeat(tmp_path, config, "test", "config")
    assert checked.returncode == 1
    assert "packetbeat.detection.dns.protected_domains (c.yml:6)" in checked.stderr, checked.stderr


def test_the_line_order_reads_the_location_not_a_parenthesis_in_the_message() -> None:
    from pybeat.config.settings import by_line

    problems = ["b.key (c.yml:9): expected (x:1): y", "a.key (c.yml:3): bad", "c.key: missing"]
    assert by_line(problems) == ["a.key (c.yml:3): bad", "b.key (c.yml:9): expected (x:1): y", "c.key: missing"]
