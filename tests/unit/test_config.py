"""Config loading and validation: the site's packetbeat.yml, dotted keys, variables, -E,
the pybeat alias, and errors that name the key, the line, the value and what was expected."""

from __future__ import annotations

import textwrap

import pytest

from pybeat.config import ConfigError, load, load_settings
from pybeat.durations import parse_duration
from pybeat.plugins import load_registry
from tests.conftest import DATA


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def write(tmp_path, text, name="pybeat.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


BASE = """
output.console: {}
"""


def test_the_sites_packetbeat_yml_loads_unchanged(registry):
    raw = load(str(DATA / "configs/packetbeat.yml"), env={})
    settings = load_settings(raw, registry)
    assert [p.name for p in settings.protocols] == ["icmp", "dhcpv4", "dns"]
    dns = settings.protocols[2].config
    assert dns.ports == [53, 5353] and dns.include_authorities is True
    assert raw.data["output"]["elasticsearch"]["password"] == "changeme"  # ${ES_PWD:changeme}
    assert settings.agent.packetbeat.interfaces.device == "any"


def test_a_ports_typo_is_refused_with_key_line_and_hint(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.protocols:
          - type: console_is_not_a_protocol_but_dns_is
          - type: dns
            portz: [53]
        output.console: {}
    """)
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    text = str(err.value)
    assert "packetbeat.protocols.1.portz (pybeat.yml:5): unknown key; did you mean 'ports'?" in text
    assert "packetbeat.protocols.0.type (pybeat.yml:3): unknown protocol" in text


def test_a_wrong_type_names_the_value_and_what_was_expected(registry, tmp_path):
    path = write(tmp_path, """
        queue.mem.events: lots
        output.console: {}
    """)
    with pytest.raises(ConfigError, match=r"queue.mem.events \(pybeat.yml:2\): Input should be a valid integer.*got 'lots'"):
        load_settings(load(path), registry)


def test_an_unknown_top_level_key_gets_a_hint(registry, tmp_path):
    path = write(tmp_path, """
        outptu.console: {}
        output.console: {}
    """)
    with pytest.raises(ConfigError, match="outptu .*unknown key; did you mean 'output'"):
        load_settings(load(path), registry)


def test_unknown_tls_key_is_an_error_not_silently_ignored(registry, tmp_path):
    path = write(tmp_path, """
        output.file:
          path: /tmp/x
          sll.enabled: true
    """)
    with pytest.raises(ConfigError, match="output.file.sll .*unknown key"):
        load_settings(load(path), registry)


def test_dotted_and_nested_keys_merge(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.interfaces.device: eth0
        packetbeat:
          interfaces:
            snaplen: 1500
        output.console: {}
    """)
    s = load_settings(load(path), registry)
    assert s.agent.packetbeat.interfaces.device == "eth0" and s.agent.packetbeat.interfaces.snaplen == 1500


def test_pybeat_alias_and_variables_and_overrides(registry, tmp_path):
    path = write(tmp_path, """
        pybeat.interfaces.device: ${DEV}
        pybeat.interfaces.snaplen: ${SNAP:2000}
        output.console: {}
    """)
    raw = load(path, ["packetbeat.interfaces.buffer_size_mb=64", "name=sensor-1"], env={"DEV": "eth9"})
    s = load_settings(raw, registry)
    i = s.agent.packetbeat.interfaces
    assert (i.device, i.snaplen, i.buffer_size_mb, s.agent.name) == ("eth9", 2000, 64, "sensor-1")


def test_a_missing_variable_without_default_is_an_error(tmp_path):
    path = write(tmp_path, "name: ${NOPE}\n")
    with pytest.raises(ConfigError, match=r"name: the variable \$\{NOPE\} is not set"):
        load(path, env={})


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match=r"pybeat.yml:\d+: not valid YAML"):
        load(path)


def test_no_output_is_an_error_for_running(registry, tmp_path):
    path = write(tmp_path, "name: x\n")
    with pytest.raises(ConfigError, match="no output is enabled"):
        load_settings(load(path), registry)
    assert load_settings(load(path), registry, require_output=False)


def test_unknown_processor_and_bad_condition(registry, tmp_path):
    path = write(tmp_path, """
        processors:
          - drop_feilds: {fields: [a]}
          - drop_event:
              when.equalz: {a: 1}
        output.console: {}
    """)
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    assert "did you mean 'drop_fields'" in str(err.value)
    assert "did you mean 'equals'" in str(err.value)


def test_unsupported_packetbeat_protocol_is_a_warning(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.protocols:
          - type: http
            ports: [80]
        output.console: {}
    """)
    s = load_settings(load(path), registry)
    assert s.protocols == [] and "not supported by pybeat" in s.warnings[0]


@pytest.mark.parametrize("text,seconds", [("10s", 10), ("500ms", 0.5), ("1m30s", 90), (5, 5), ("2h", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_transaction_timeout_takes_a_duration_as_packetbeat_writes_it(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.protocols:
          - type: dns
            ports: [53]
            transaction_timeout: 5s
          - type: icmp
            transaction_timeout: 1m
        output.console: {}
    """)
    s = load_settings(load(path), registry)
    assert [p.config.transaction_timeout for p in s.protocols] == [5.0, 60.0]


def test_transaction_timeout_must_be_positive(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.protocols: [{type: dns, ports: [53], transaction_timeout: 0s}]
        output.console: {}
    """)
    with pytest.raises(ConfigError, match="transaction_timeout .*positive"):
        load_settings(load(path), registry)


@pytest.mark.parametrize("value,ok", [("auto", True), (2, True), (0, False), ("many", False)])
def test_workers_is_a_count_or_auto(registry, tmp_path, value, ok):
    path = write(tmp_path, f"packetbeat.workers: {value}\noutput.console: {{}}\n")
    if ok:
        assert load_settings(load(path), registry).agent.packetbeat.workers == value
    else:
        with pytest.raises(ConfigError, match="packetbeat.workers"):
            load_settings(load(path), registry)


@pytest.mark.parametrize("override,message", [
    ("packetbeat.limits.bogus=1", "packetbeat.limits.bogus .*unknown key"),
    ("packetbeat.limits.max_tcp_connections=0", "max_tcp_connections .*greater than or equal to 1"),
    ("output.console.queue.mem.events=10", "output.console.queue .*not supported"),
    ("queue.mem.immediate_shutdown=true", "immediate_shutdown .*not supported"),
])
def test_settings_that_would_be_ignored_or_crash_later_are_refused(registry, tmp_path, override, message):
    path = write(tmp_path, "output.console: {}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(load(path, [override]), registry)


def test_file_output_path_time_patterns_are_refused_not_taken_literally(registry, tmp_path):
    path = write(tmp_path, "output.file.path: '/var/log/%{+yyyy.MM.dd}'\n")
    with pytest.raises(ConfigError, match="output.file.path .*not supported"):
        load_settings(load(path), registry)


def test_variables_stay_strings_until_a_model_converts_them(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.interfaces.snaplen: ${SNAP:1500}
        output.elasticsearch: {hosts: ["localhost:9200"], username: elastic, password: "${PW}"}
    """)
    s = load_settings(load(path, env={"PW": "0123"}), registry)
    assert s.agent.packetbeat.interfaces.snaplen == 1500
    assert s.outputs[0].config.password == "0123"  # not 83 (YAML octal)


def test_e_overrides_can_index_into_lists(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.protocols:
          - type: dns
            ports: [53]
        output.console: {}
    """)
    s = load_settings(load(path, ["packetbeat.protocols.0.ports=[5353]"]), registry)
    assert s.protocols[0].config.ports == [5353]
    with pytest.raises(ConfigError, match="not an index"):
        load(path, ["packetbeat.protocols.3.ports=[1]"])


def test_processor_settings_that_are_not_a_mapping_are_a_config_error(registry, tmp_path):
    path = write(tmp_path, """
        processors:
          - drop_fields: [dns.answers]
        output.console: {}
    """)
    with pytest.raises(ConfigError, match=r"processors.0.drop_fields \(pybeat.yml:3\): a processor's settings are a mapping"):
        load_settings(load(path), registry)


def test_union_errors_name_the_key_once_without_type_tags(registry, tmp_path):
    path = write(tmp_path, """
        packetbeat.interfaces: {device: eth0, snaplen: huge}
        packetbeat.workers: many
        output.console: {}
    """)
    with pytest.raises(ConfigError) as err:
        load_settings(load(path), registry)
    text = str(err.value)
    assert "packetbeat.interfaces.snaplen (pybeat.yml:2): Input should be a valid integer" in text
    assert "packetbeat.workers (pybeat.yml:3): " in text and "'auto'" in text
    assert "[" not in text.replace("[InterfaceConfig]", "").split("got")[0] or "list[" not in text
    assert "literal" not in text and ".int " not in text and "valid list" not in text
