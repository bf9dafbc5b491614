"""docs/processors.md is true about which processors exist: every processor of its table is a
registered, working processor; the Beats processors it lists as missing are exactly the ones
refused by name, each with the "not supported" error at config time; and every processor
libbeat documents for Packetbeat is one or the other (none is an "unknown processor")."""

from __future__ import annotations

import re

import pytest

from pybeat.config import load, load_settings
from pybeat.config.loader import ConfigError
from pybeat.plugins import load_registry
from pybeat.processors.unsupported import UNSUPPORTED
from tests.conftest import REPO

DOC = (REPO / "docs" / "processors.md").read_text()

#: The processors Packetbeat's reference documents (7.17 and 8.x), script and timestamp included.
BEATS = """add_cloud_metadata add_cloudfoundry_metadata add_docker_metadata add_fields add_formatted_index
add_host_metadata add_id add_kubernetes_metadata add_labels add_locale add_network_direction add_nomad_metadata
add_observer_metadata add_process_metadata add_session_metadata add_tags append community_id convert copy_fields
decode_base64_field decode_cef decode_csv_fields decode_duration decode_json_fields decode_xml
decode_xml_wineventlog decompress_gzip_field detect_mime_type dissect dns drop_event drop_fields extract_array
fingerprint include_fields lowercase move_fields rate_limit registered_domain rename replace script syslog
timestamp translate_ldap_attribute translate_sid truncate_fields uppercase urldecode""".split()

#: The stock chain of issue 16: each must be a working processor.
STOCK = """add_cloud_metadata add_docker_metadata add_kubernetes_metadata detect_mime_type add_id fingerprint
add_network_direction community_id add_observer_metadata dns registered_domain convert truncate_fields replace
dissect script""".split()


def _table() -> list[str]:
    part = DOC[DOC.index("## The processors"):DOC.index("### ")]
    return re.findall(r"^\| `([a-z0-9_]+)` \|", part, re.M)


def _missing() -> list[str]:
    part = DOC[DOC.index("## Beats processors pybeat does not have"):]
    part = part[part.index("clearly:"):]
    part = part[:part.index("\n\n")]
    return re.findall(r"`([a-z0-9_]+)`", part)


def test_every_documented_processor_is_registered_and_supported():
    reg = load_registry()
    names = _table()
    assert len(names) >= 25 and set(STOCK) <= set(names)
    for name in names:
        info = reg.info("processors", name)
        plugin = reg.get("processors", name)
        assert getattr(plugin, "supported", True), name
        assert info is not None


def test_the_documented_missing_ones_are_exactly_those_refused_by_name():
    assert sorted(_missing()) == sorted(UNSUPPORTED)
    assert not set(UNSUPPORTED) & set(_table())


def test_every_beats_processor_is_supported_or_refused_by_name():
    assert set(BEATS) <= set(_table()) | set(UNSUPPORTED), set(BEATS) - set(_table()) - set(UNSUPPORTED)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_each_missing_one_fails_config_check_with_not_supported(tmp_path, name):
    cfg = tmp_path / "pybeat.yml"
    cfg.write_text(f"packetbeat.protocols:\n  - type: dns\n    ports: [53]\nprocessors:\n  - {name}: {{}}\n"
                   "output.file.path: /tmp/x\n")
    with pytest.raises(ConfigError) as err:
        load_settings(load(str(cfg), env={}), load_registry())
    text = str(err.value)
    assert f"the Beats processor {name} is not supported by pybeat" in text and "pybeat.yml:5" in text
