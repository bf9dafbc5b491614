"""The per-site example validates: base + each site file, secrets from the keystore, merged as
documented (maps deeply, lists replaced, later files win), includes from pybeat.d, and
`export config` shows the merged result with the secrets masked. (Runs against real servers:
tests/elasticsearch/test_sites_es.py and tests/logstash/test_sites_logstash.py.)"""

from __future__ import annotations

import yaml
import pytest

from pybeat.config import load_settings
from pybeat.config.sources import Request, load_config
from pybeat.plugins import load_registry
from tests.config.sites import SECRETS, SITE_FILES, SITES, make_keystore, pybeat, site_args


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def settings_for(site: str, tmp_path, registry, env=None):
    make_keystore(tmp_path / "data", SECRETS[site])
    req = Request([str(SITES / "base.yml"), str(SITES / SITE_FILES[site])], config=str(SITES),
                  data=str(tmp_path / "data"))
    raw, _ = load_config(req, env=env or {})
    return load_settings(raw, registry)


@pytest.mark.parametrize("site", sorted(SITE_FILES))
def test_every_site_validates_with_its_keystore(site, tmp_path):
    make_keystore(tmp_path / "data", SECRETS[site])
    out = pybeat("test", "config", *site_args(site, tmp_path / "data"))
    assert out.returncode == 0 and out.stdout.strip() == "Config OK", out.stderr


def test_site_a_merges_over_the_base(tmp_path, registry):
    s = settings_for("a", tmp_path, registry, env={"MIRROR_IFACE": "ens5"})
    a = s.agent
    assert a.fields["observer"] == {"vendor": "Example Corp", "product": "pybeat", "type": "sensor",
                                    "name": "sensor-site-a", "geo": {"name": "site-a", "city_name": "Lyon"}}
    assert a.tags == ["dns-monitoring", "site-a"]  # the site's list replaced the base's
    assert [p.name for p in s.protocols] == ["dns", "dhcpv4", "icmp"]  # from the base
    assert a.packetbeat.interfaces.device == "ens5"  # from pybeat.d/10-capture.yml
    es = s.outputs[0].config
    assert es.password == "s3cret" and es.index == "packetbeat-site-a"
    assert s.raw.origin("output.elasticsearch.index") == "site-a-elasticsearch.yml:22"
    assert s.raw.origin("packetbeat.interfaces.device") == "10-capture.yml:3"


def test_site_b_derives_hosts_and_credentials_from_cloud_id_and_the_keystore(tmp_path, registry):
    s = settings_for("b", tmp_path, registry)
    es = s.outputs[0].config
    assert es.hosts == ["https://abc123.eu-west-1.aws.found.io:443"]
    assert (es.username, es.password) == ("elastic", "s3cret")
    assert es.index == "packetbeat-site-b"


def test_site_c_is_a_logstash_output_with_tls_and_a_key_passphrase(tmp_path, registry):
    s = settings_for("c", tmp_path, registry)
    ls = s.outputs[0]
    assert ls.name == "logstash" and ls.config.ssl.key_passphrase == "site-c-key-pass"


@pytest.mark.parametrize("site", sorted(SITE_FILES))
def test_export_config_shows_the_merged_site_with_secrets_masked(site, tmp_path):
    make_keystore(tmp_path / "data", SECRETS[site])
    out = pybeat("export", "config", *site_args(site, tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    merged = yaml.safe_load(out.stdout)
    assert merged["fields"]["observer"]["name"] == f"sensor-site-{site}"
    assert merged["packetbeat"]["protocols"][0]["type"] == "dns"
    for secret in SECRETS[site].values():
        assert secret not in out.stdout and secret.split(":")[-1] not in out.stdout
    assert "[redacted]" in out.stdout


def test_a_later_file_wins_and_lists_are_replaced(tmp_path):
    base = tmp_path / "base.yml"
    base.write_text("name: base\ntags: [a, b]\nfields: {x: 1, y: {z: 2}}\noutput.console: {}\n")
    site = tmp_path / "site.yml"
    site.write_text("name: site\ntags: [c]\nfields: {y: {w: 3}}\n")
    for p in (base, site):
        p.chmod(0o600)
    raw, _ = load_config(Request([str(base), str(site)]), env={})
    assert raw.data["name"] == "site" and raw.data["tags"] == ["c"]
    assert raw.data["fields"] == {"x": 1, "y": {"z": 2, "w": 3}}
    assert raw.origin("name") == "site.yml:1" and raw.origin("fields.x") == "base.yml:3"


def test_an_included_file_cannot_include_and_errors_name_the_included_file(tmp_path):
    (tmp_path / "pybeat.d").mkdir()
    main = tmp_path / "pybeat.yml"
    main.write_text("pybeat.config.d: pybeat.d/*.yml\noutput.console: {}\n")
    (tmp_path / "pybeat.d" / "a.yml").write_text("queue.mem.events: lots\n")
    main.chmod(0o600)
    out = pybeat("test", "config", "-c", str(main), "--path.config", str(tmp_path))
    assert out.returncode == 1 and "queue.mem.events (a.yml:1)" in out.stderr
    (tmp_path / "pybeat.d" / "a.yml").write_text("pybeat.config.d: other/*.yml\n")
    out = pybeat("test", "config", "-c", str(main), "--path.config", str(tmp_path))
    assert out.returncode == 1 and "cannot include" in out.stderr
