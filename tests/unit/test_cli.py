"""The pybeat command: test config, export config, version, plugins, run on a capture."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PCAPS, REPO, DATA

PYBEAT = [sys.executable, "-m", "pybeat.cli"]


def run(*args, cwd=None, env=None):
    return subprocess.run([*PYBEAT, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_version():
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("pybeat version")


def test_test_config_accepts_the_sites_packetbeat_yml():
    r = run("test", "config", "-c", str(DATA / "configs/packetbeat.yml"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Config OK"


def test_test_config_rejects_a_portz_typo_naming_it(tmp_path):
    text = (DATA / "configs/packetbeat.yml").read_text().replace("ports: [53, 5353]", "portz: [53, 5353]")
    cfg = tmp_path / "packetbeat.yml"
    cfg.write_text(text)
    r = run("test", "config", "-c", str(cfg))
    assert r.returncode == 1
    assert "packetbeat.protocols.2.portz (packetbeat.yml:18): unknown key; did you mean 'ports'?" in r.stderr


def test_export_config_masks_secrets(tmp_path):
    r = run("export", "config", "-c", str(DATA / "configs/packetbeat.yml"), "-E", "output.elasticsearch.password=hunter2")
    assert r.returncode == 0, r.stderr
    assert "changeme" not in r.stdout and "[redacted]" in r.stdout and "hunter2" not in r.stdout


def test_global_flags_work_after_the_command(tmp_path):
    cfg = tmp_path / "x.yml"
    cfg.write_text("output.console: {}\n")
    r = run("test", "config", "-c", str(cfg), "-E", "name=probe")
    assert r.returncode == 0, r.stderr


def test_group_writable_config_is_refused_unless_strict_perms_is_off(tmp_path):
    cfg = tmp_path / "x.yml"
    cfg.write_text("output.console: {}\n")
    os.chmod(cfg, 0o664)
    assert "can be written by group" in run("test", "config", "-c", str(cfg)).stderr
    assert run("test", "config", "-c", str(cfg), "--strict.perms=false").returncode == 0


def test_missing_capture_file_is_a_clear_error(tmp_path):
    cfg = tmp_path / "x.yml"
    cfg.write_text("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file.path: out\n")
    r = run("run", "-c", str(cfg), "-I", str(tmp_path / "nope.pcap"), "-t", "-e", cwd=tmp_path)
    assert r.returncode == 1 and "cannot open capture file" in r.stderr and "Traceback" not in r.stderr


def test_plugins_lists_builtins():
    r = run("plugins")
    assert r.returncode == 0 and "protocol  dns" in r.stdout and "output    file" in r.stdout


def test_readme_first_command_on_the_bundled_sample(tmp_path):
    """The newcomer's command: the bundled capture in, NDJSON events and a summary out."""
    r = run("run", "-c", str(REPO / "packaging/sample/pybeat.yml"), "-I", str(REPO / "packaging/sample/dns.pcap"),
            "-t", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "pybeat summary" in r.stdout and "top names" in r.stdout
    (name,) = os.listdir(tmp_path / "out")
    docs = [json.loads(x) for x in (tmp_path / "out" / name).read_text().splitlines()]
    assert len(docs) >= 118 and all(d["type"] == "dns" for d in docs)


REQUIRED = [
    "@timestamp", "type", "status", "client.ip", "client.port", "server.ip", "server.port", "network.transport",
    "network.protocol", "dns.id", "dns.op_code", "dns.question.name", "dns.question.type", "dns.question.class",
    "dns.response_code", "event.duration", "event.category", "event.kind", "related.ip",
]


def _get(doc, dotted):
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_issue_2_done_criterion_dns_udp_mixed(tmp_path):
    """Every answered transaction of dns_udp_mixed.pcap carries the fields issue 2 names, with
    @timestamp inside the capture's time span."""
    pcap = PCAPS / "dns_udp_mixed.pcap"
    if not pcap.exists():
        pytest.skip("shared captures missing")
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text("packetbeat.protocols: [{type: dns, ports: [53]}]\noutput.file: {path: out, filename: t}\n")
    r = run("run", "-c", str(cfg), "-I", str(pcap), "-t", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (name,) = os.listdir(tmp_path / "out")
    docs = [json.loads(x) for x in (tmp_path / "out" / name).read_text().splitlines()]
    from pybeat.capture.pcapfile import PcapFileSource
    from pybeat.timefmt import format_ts

    stamps = [ts for ts, _, _ in PcapFileSource(str(pcap))]
    lo, hi = format_ts(min(stamps)), format_ts(max(stamps))
    answered = [d for d in docs if _get(d, "dns.type") == "answer" and _get(d, "event.duration") is not None]
    assert len(answered) >= 100
    for d in answered:
        if _get(d, "dns.question.name") is None:
            continue  # FORMERR/NOTIMP answers carry no question section
        missing = [f for f in REQUIRED if _get(d, f) is None]
        assert not missing, (missing, d)
        assert lo <= d["@timestamp"] <= hi


def test_export_ilm_policy_is_an_ism_policy_for_opensearch():
    cfg = str(DATA / "configs/packetbeat.yml")
    es = json.loads(run("export", "ilm-policy", "-c", cfg).stdout)
    os_ = json.loads(run("export", "ilm-policy", "-c", cfg, "--es.version", "opensearch-2.19.0").stdout)
    assert "phases" in es["policy"] and "states" in os_["policy"]


def test_flags_before_and_after_the_command_are_all_kept():
    from pybeat.cli import build_parser, main  # noqa: F401

    import pybeat.cli as cli

    ns = cli.build_parser().parse_args(["-E", "a=1", "-I", "x.pcap", "-t", "-l", "3", "run", "-E", "b=2"])
    assert ns.file == "x.pcap" and ns.fast is True and ns.loops == 3
    captured = {}

    def fake_run(args, registry):
        captured.update(overrides=args.overrides, file=args.file, fast=args.fast, loops=args.loops)
        return 0

    old = cli.cmd_run
    cli.cmd_run = fake_run
    try:
        assert cli.main(["-E", "a=1", "-I", "x.pcap", "-t", "run", "-E", "b=2"]) == 0
    finally:
        cli.cmd_run = old
    assert captured == {"overrides": ["a=1", "b=2"], "file": "x.pcap", "fast": True, "loops": 1}


def test_negative_loops_are_refused():
    r = run("run", "-I", "x.pcap", "-l", "-1")
    assert r.returncode == 2 and "-l takes 0" in r.stderr
