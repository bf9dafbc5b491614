"""Validation: Packetbeat keys pybeat does not act on are warnings, typos are errors with a
hint, every error is reported in one go, values that may be secret are not echoed, and
validating creates nothing."""

from __future__ import annotations

import textwrap

import pytest

from pybeat.config import ConfigError, load, load_settings
from pybeat.plugins import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def write(tmp_path, text, name="pybeat.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_packetbeat_keys_without_effect_are_one_warning_each(registry, tmp_path):
    path = write(tmp_path, """
        setup.kibana:
          host: "localhost:5601"
          space.id: x
        setup.dashboards.enabled: true
        monitoring.enabled: false
        xpack.monitoring.elasticsearch: {hosts: ["x:9200"]}
        instrumentation:
        migration.6_to_7.enabled: true
        http.pprof.enabled: true
        output.elasticsearch:
          hosts: ["localhost:9200"]
          preset: balanced
        logging.event_data.to_files: true
    """)
    s = load_settings(load(path), registry)
    text = "\n".join(s.warnings)
    for key, line in [("setup.kibana", 2), ("setup.dashboards", 5), ("xpack", 7), ("instrumentation", 8),
                      ("migration", 9), ("http.pprof", 10),
                      ("logging.event_data", 14)]:
        assert f"{key} (pybeat.yml:{line}): pybeat does not act on this Packetbeat setting; it has no effect" in text
    assert "monitoring (" not in text  # turned off: nothing to say
    assert len(s.warnings) == 7


def test_a_typo_inside_a_packetbeat_section_is_still_an_error(registry, tmp_path):
    path = write(tmp_path, """
        output.elasticsearch:
          hosts: ["localhost:9200"]
          kerberos.enabled: false
          presett: balanced
        packetbeat.interfaces.devise: any
    """)
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    text = str(err.value)
    assert "output.elasticsearch.presett (pybeat.yml:5): unknown key; did you mean 'preset'?" in text
    assert "packetbeat.interfaces.devise (pybeat.yml:6): unknown key; did you mean 'device'?" in text


def test_every_error_is_reported_at_once(registry, tmp_path):
    path = write(tmp_path, """
        queue.mem.events: lots
        outptu.console: {}
        packetbeat.protocols:
          - type: dns
            portz: [53]
        output.file:
          path: /tmp/x
          sll.enabled: true
        processors:
          - drop_feilds: {fields: [a]}
    """)
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    keys = [p.split(" ")[0] for p in err.value.problems]
    assert sorted(keys) == sorted(["queue.mem.events", "outptu", "packetbeat.protocols.0.portz",
                                   "output.file.sll", "processors.0.drop_feilds"])


@pytest.mark.parametrize("snippet,secret", [
    ("output.elasticsearch: {hosts: [x], ssl: {verification_mode: {password: S3cr3tPlant}}}", "S3cr3tPlant"),
    ("output.elasticsearch: {hosts: [x], password: [S3cr3tPlant]}", "S3cr3tPlant"),
    ("output.elasticsearch: {hosts: [x], api_key: {k: 12345678}}", "12345678"),  # (a bare number is text, as in Beats)
    ("output.elasticsearch: {hosts: [x], timeout: 'https://u:S3cr3tPlant@h'}", "S3cr3tPlant"),
    ("output.logstash: {hosts: [x], ssl: {key: {a: '-----BEGIN PRIVATE KEY-----\\nMIIEvQ'}}}", "MIIEvQ"),
])
def test_errors_name_the_key_and_type_but_not_a_value_that_may_be_secret(registry, tmp_path, snippet, secret):
    path = write(tmp_path, snippet + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    assert secret not in str(err.value) and "got a " in str(err.value)


def test_validating_creates_no_processor(registry, tmp_path, monkeypatch):
    plugin = registry.get("processors", "add_host_metadata")

    def create(config, beat):
        raise AssertionError("validation must not create processors")

    monkeypatch.setattr(plugin, "create", create)
    path = write(tmp_path, """
        processors:
          - add_host_metadata: ~
          - drop_event.when.equals.a: 1
        output.console: {}
    """)
    assert load_settings(load(path), registry).outputs


def test_modelled_packetbeat_keys_without_effect_warn_when_changed(registry, tmp_path):
    path = write(tmp_path, """
        logging.to_syslog: true
        logging.files.keepfiles: 3
        logging.files.name: sensor
        packetbeat.procs.enabled: false
        max_procs: 2
        output.console: {}
    """)
    s = load_settings(load(path), registry)
    warned = sorted(w.split(" ")[0] for w in s.warnings)
    assert warned == ["logging.files.keepfiles", "logging.to_syslog", "max_procs"]  # procs off = its default
