"""Pure parts of the Elasticsearch output, no node needed: Cloud ID, bulk bytes, item
classification, index names, template, config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
import yaml

from pybeat.api import Batch, BeatInfo, Event, RetryPolicy
from pybeat.outputs.elasticsearch import admin
from pybeat.outputs.elasticsearch.bulk import BulkEncoder, Outcome, classify_response, classify_status
from pybeat.outputs.elasticsearch.client import auth_header, parse_host
from pybeat.outputs.elasticsearch.cloudid import apply_cloud, decode_cloud_id
from pybeat.outputs.elasticsearch.config import ElasticsearchConfig
from pybeat.outputs.elasticsearch.output import default_index
from pybeat.pipeline.runner import backoff_delay
from pybeat.outputs.elasticsearch.plugin import plugin
from pybeat.outputs.elasticsearch.selector import FormatString, Selector, SelectorError, joda_format
from pybeat.outputs.elasticsearch.template import TemplateTarget, build_template

TS = 1_795_000_000_123_456_789  # 2026-11-18T11:06:40.123Z


def _declared() -> dict[str, str]:
    """What the agent hands the output: the core's fields and every built-in protocol's."""
    from pybeat.fieldtypes import declared_field_types
    from pybeat.plugins import load_registry

    reg = load_registry()
    return declared_field_types([(n, reg.get("protocols", n)) for n in ("dns", "icmp", "dhcpv4", "dhcpv6")])
BEAT = BeatInfo(version="0.1.0", hostname="h")

# -- cloud.id (libbeat/cloudid/cloudid_test.go) ------------------------------------------

US_EAST = "dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw=="
GCP = "https://{}.us-central1.gcp.cloud.es.io:{}"
ES_ID, KB_ID = "ac31ebb90241773157043c34fd26fd46", "a4c06230e48c8fce7be88a074a3bb3e0"
CLOUD_VECTORS = [
    (f"staging:{US_EAST}", "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443",
     "https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443"),
    (US_EAST, "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443",
     "https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443"),
    (f":{US_EAST}", "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443",
     "https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443"),
    ("gcp-cluster:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJDhhMDI4M2FmMDQxZjE5NWY3NzI5YmMwNGM2NmEwZmNlJDBjZDVjZDU2OGVlYmU1M2M4OWViN2NhZTViYWM4YjM3",
     GCP.format("8a0283af041f195f7729bc04c66a0fce", 443), GCP.format("0cd5cd568eebe53c89eb7cae5bac8b37", 443)),
    ("custom-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA=",
     GCP.format(ES_ID, 9243), GCP.format(KB_ID, 9243)),
    ("different-es-kb-port:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2OjkyNDMkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
     GCP.format(ES_ID, 9243), GCP.format(KB_ID, 9244)),
    ("only-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwOjkyNDQ=",
     GCP.format(ES_ID, 443), GCP.format(KB_ID, 9244)),
    ("host-and-kb-set:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvOjkyNDMkYWMzMWViYjkwMjQxNzczMTU3MDQzYzM0ZmQyNmZkNDYkYTRjMDYyMzBlNDhjOGZjZTdiZTg4YTA3NGEzYmIzZTA6OTI0NA==",
     GCP.format(ES_ID, 9243), GCP.format(KB_ID, 9244)),
    ("extra-items:dXMtY2VudHJhbDEuZ2NwLmNsb3VkLmVzLmlvJGFjMzFlYmI5MDI0MTc3MzE1NzA0M2MzNGZkMjZmZDQ2JGE0YzA2MjMwZTQ4YzhmY2U3YmU4OGEwNzRhM2JiM2UwJGFub3RoZXJpZCRhbmRhbm90aGVy",
     GCP.format(ES_ID, 443), GCP.format(KB_ID, 443)),
]


@pytest.mark.parametrize("cloud_id,es_url,kb_url", CLOUD_VECTORS)
def test_cloud_id_vectors(cloud_id: str, es_url: str, kb_url: str) -> None:
    """Every Cloud ID vector of libbeat's tests decodes to the same Elasticsearch and Kibana URLs."""
    assert decode_cloud_id(cloud_id) == (es_url, kb_url)


def test_cloud_auth_overwrites_hosts_credentials_and_kibana() -> None:
    """cloud.id + cloud.auth rewrite output.elasticsearch and setup.kibana.host as Beats does."""
    cfg = {
        "cloud": {"id": "cloudidtest:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyQyNDlmM2FmMWY0ZWVlMjRhODRlM2I0MDFlNjhhMWIyYSRkNGFjNzU1OWQ0Njc0YjdjOTFhYmUxMDg1NmQ4NDMwNA==",
                  "auth": "elastic:changeme"},
        "output": {"elasticsearch": {"hosts": ["localhost:9200"], "bulk_max_size": 10}},
    }
    apply_cloud(cfg)
    es = cfg["output"]["elasticsearch"]
    assert es["hosts"] == ["https://249f3af1f4eee24a84e3b401e68a1b2a.us-east-1.aws.found.io:443"]
    assert (es["username"], es["password"], es["bulk_max_size"]) == ("elastic", "changeme", 10)
    assert cfg["setup"]["kibana"]["host"] == "https://d4ac7559d4674b7c91abe10856d84304.us-east-1.aws.found.io:443"


def test_cloud_id_with_api_key_keeps_the_key() -> None:
    """cloud.id without cloud.auth sets only the hosts; an api_key stays as the credential."""
    cfg = {"cloud": {"id": US_EAST}, "output": {"elasticsearch": {"api_key": "id:secret"}}}
    apply_cloud(cfg)
    assert cfg["output"]["elasticsearch"] == {
        "api_key": "id:secret", "hosts": ["https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443"]}


@pytest.mark.parametrize("cfg,message", [
    ({"cloud": {"id": "staging:garbage!!"}}, "base64 decoding failed"),
    ({"cloud": {"id": "staging:" + "dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0Zg=="}},
     "Expected at least 3 parts"),
    ({"cloud": {"id": US_EAST, "auth": "blah"}}, "cloud.auth setting doesn't contain `:`"),
    ({"cloud": {"auth": "elastic:changeme"}}, "cloud.auth specified but cloud.id is empty. Please specify both"),
    ({"cloud": {"id": US_EAST}, "output": {"logstash": {"hosts": ["x:5044"]}}},
     "The cloud.id setting enables the Elasticsearch output, but you already have the logstash output enabled in the config"),
])
def test_cloud_id_errors_use_beats_texts(cfg: dict, message: str) -> None:
    """Bad Cloud settings are refused with libbeat's error texts."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("`", "`")):
        apply_cloud(cfg)


def test_cloud_id_refuses_url_characters() -> None:
    """Components carrying '/', '@', '#' or '?' (which would change the URL) are refused."""
    import base64

    bad = base64.b64encode(b"evil.example/x$abc$def").decode()
    with pytest.raises(ValueError, match="invalid character"):
        decode_cloud_id(bad)


# -- bulk encoding and outcomes ----------------------------------------------------------------

def test_bulk_body_bytes() -> None:
    """Action and document lines are exact: create + _index (+ pipeline), @timestamp first,
    @metadata never indexed, the event's fields untouched."""
    enc = BulkEncoder()
    fields = {"dns": {"id": 7}, "client": {"ip": "10.0.0.1"}}
    ev = Event(TS, fields, {"pipeline": "p"})
    lines = [enc.action("create", "packetbeat-0.1.0-2026.11.18", "p"), enc.document(ev)]
    assert enc.body(lines) == (
        b'{"create":{"_index":"packetbeat-0.1.0-2026.11.18","pipeline":"p"}}\n'
        b'{"@timestamp":"2026-11-18T11:06:40.123Z","dns":{"id":7},"client":{"ip":"10.0.0.1"}}\n'
    )
    assert fields == {"dns": {"id": 7}, "client": {"ip": "10.0.0.1"}}
    assert enc.action("create", "i", None, "abc") == b'{"create":{"_index":"i","_id":"abc"}}'
    assert BulkEncoder(escape_html=True).document(Event(TS, {"q": "<a&b>"})).endswith(b'"q":"\\u003ca\\u0026b\\u003e"}')


@pytest.mark.parametrize("status,op,outcome", [
    (200, "create", Outcome.ACKED), (201, "create", Outcome.ACKED), (409, "create", Outcome.DUPLICATE),
    (409, "index", Outcome.NON_INDEXABLE), (429, "create", Outcome.RETRY), (500, "create", Outcome.RETRY),
    (503, "create", Outcome.RETRY), (400, "create", Outcome.NON_INDEXABLE), (404, "create", Outcome.NON_INDEXABLE),
])
def test_item_status_classification(status: int, op: str, outcome: Outcome) -> None:
    """libbeat's per-item rule: <300 ok, 409 duplicate on create, 429/5xx retry, other 4xx non-indexable."""
    assert classify_status(status, op) is outcome


def test_bulk_response_classification_with_reasons() -> None:
    """A mixed bulk response yields one outcome per item, with the error type and reason; items
    the response does not list are retried, never acked."""
    body = {"errors": True, "items": [
        {"create": {"status": 201}},
        {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
        {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
        {"create": {"status": 400, "error": {"type": "mapper_parsing_exception", "reason": "bad ip",
                                              "caused_by": {"type": "illegal_argument_exception", "reason": "'x' is not an IP"}}}},
    ]}
    outs = classify_response(body, 5)
    assert [o.outcome for o in outs] == [Outcome.ACKED, Outcome.DUPLICATE, Outcome.RETRY, Outcome.NON_INDEXABLE, Outcome.RETRY]
    assert outs[3].error_type == "mapper_parsing_exception" and "'x' is not an IP" in outs[3].reason
    assert [o.outcome for o in classify_response("<html>bad gateway</html>", 2)] == [Outcome.RETRY] * 2
    assert [o.outcome for o in classify_response({"errors": False, "items": [{"create": {"status": 201}}] * 3}, 3)] == [Outcome.ACKED] * 3


def test_backoff_is_exponential_capped_and_jittered() -> None:
    """Delays double from backoff.init up to backoff.max, each between half and all of the step
    (the agent owns the backoff: pybeat.pipeline.runner, with the output's backoff.* keys)."""
    policy = RetryPolicy(3, 1.0, 60.0)
    assert [backoff_delay(n + 1, policy, rand=lambda: 1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(4, policy, rand=lambda: 0.0) == 4.0
    assert backoff_delay(101, policy, rand=lambda: 0.0) == 30.0


# -- index names ---------------------------------------------------------------------------

def test_format_string_fields_defaults_metadata_and_dates() -> None:
    """%{[field]}, %{[field]:default}, %{[@metadata.x]} and %{+yyyy.MM.dd} render as in Beats."""
    ev = Event(TS, {"agent": {"version": "0.1.0"}, "type": "dns"})
    meta = {"beat": "packetbeat", "version": "0.1.0"}
    assert FormatString("packetbeat-%{[agent.version]}-%{+yyyy.MM.dd}").render(ev, meta) == "packetbeat-0.1.0-2026.11.18"
    assert FormatString("%{[@metadata.beat]}-%{[type]}-%{[site]:hq}").render(ev, meta) == "packetbeat-dns-hq"
    assert joda_format("yyyy-MM-dd'T'HH:mm:ss.SSS", TS) == "2026-11-18T11:06:40.123"
    with pytest.raises(SelectorError, match="key not found: site"):
        FormatString("x-%{[site]}").render(ev, meta)


def test_selector_rules_overrides_and_lowercase() -> None:
    """raw_index wins, then the first matching indices rule (when / mappings), then the default,
    lower-cased."""
    cfg = ElasticsearchConfig.model_validate({"indices": [
        {"index": "icmp-%{+yyyy}", "when": {"equals": {"type": "icmp"}}},
        {"index": "%{[type]}", "mappings": {"dns": "DNS-Events"}, "default": "other"},
    ]})
    sel = Selector("Packetbeat-%{+yyyy.MM.dd}", cfg.indices, "index", ("raw_index",))
    assert sel.select(Event(TS, {"type": "icmp"}), {}) == "icmp-2026"
    assert sel.select(Event(TS, {"type": "dns"}), {}) == "dns-events"
    assert sel.select(Event(TS, {"type": "dhcpv4"}), {}) == "other"
    assert sel.select(Event(TS, {}), {}) == "packetbeat-2026.11.18"
    assert sel.select(Event(TS, {"type": "dns"}, {"raw_index": "Custom"}), {}) == "custom"
    # A protocol's `index:` reaches the output unformatted in raw_index; it is rendered per event.
    assert sel.select(Event(TS, {"type": "dns"}, {"raw_index": "dns-%{+yyyy.MM}"}), {}) == "dns-2026.11"


def test_default_index_follows_cluster_capabilities() -> None:
    """Data stream packetbeat-<version> where the cluster has them, daily indices elsewhere."""
    from pybeat.outputs.elasticsearch.client import ClusterInfo

    assert default_index(BEAT, ClusterInfo("elasticsearch", "8.15.0", (8, 15, 0), data_streams=True)) == "packetbeat-0.1.0"
    assert default_index(BEAT, ClusterInfo("elasticsearch", "7.17.28", (7, 17, 28))) == "packetbeat-0.1.0-%{+yyyy.MM.dd}"
    assert default_index(BEAT, ClusterInfo("opensearch", "2.19.6", (2, 19, 6), data_streams=True)).endswith("-%{+yyyy.MM.dd}")


# -- template ------------------------------------------------------------------------------

def _prop(mappings: dict, dotted: str) -> dict:
    node = {"properties": mappings["properties"]}
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_template_types_for_kibana_and_ml() -> None:
    """The generated template maps what dashboards and ML jobs query with ECS types."""
    body = admin.export_template(None, {"template": {"settings": {"index.number_of_shards": 1}}}, BEAT, "8.15.0",
                                 _declared())
    assert body["index_patterns"] == ["packetbeat-0.1.0*"] and body["data_stream"] == {}
    assert body["template"]["settings"]["index"]["number_of_shards"] == 1
    assert body["template"]["settings"]["index"]["lifecycle"] == {"name": "packetbeat"}
    m = body["template"]["mappings"]
    for field in ("client.ip", "source.ip", "destination.ip", "server.ip", "related.ip", "dns.resolved_ip"):
        assert _prop(m, field)["type"] == "ip", field
    for field in ("@timestamp", "event.start", "event.end"):
        assert _prop(m, field)["type"] == "date", field
    for field in ("event.duration", "source.bytes", "destination.bytes", "dns.answers_count", "dns.answers.ttl"):
        assert _prop(m, field)["type"] == "long", field
    for field in ("dns.question.name", "dns.question.registered_domain", "dns.question.etld_plus_one",
                  "dns.question.type", "dns.response_code", "agent.type", "host.name", "event.dataset",
                  "network.protocol", "status", "server.domain", "dhcpv4.option.message_type", "icmp.request.message"):
        assert _prop(m, field)["type"] == "keyword", field


def test_template_forms_per_target() -> None:
    """Legacy template before ES 7.8, composable without data stream for OpenSearch and OSS 7.x."""
    legacy = admin.export_template(None, {}, BEAT, "7.7.0")
    assert "order" in legacy and "template" not in legacy and "data_stream" not in legacy
    os_body = admin.export_template(None, {}, BEAT, "opensearch:2.19.0")
    assert "data_stream" not in os_body and "lifecycle" not in os_body["template"]["settings"]["index"]
    name, body = build_template({"template": {"name": "pb", "pattern": "pb-*"}}, BEAT, TemplateTarget.parse("7.17.0"))
    assert name == "pb" and body["index_patterns"] == ["pb-*"]


def test_policies() -> None:
    """Beats' default ILM policy for Elasticsearch, an ISM delete policy for OpenSearch."""
    ilm = admin.export_ilm_policy(None, {}, BEAT)
    assert ilm["policy"]["phases"]["hot"]["actions"]["rollover"] == {"max_age": "30d", "max_primary_shard_size": "50gb"}
    ism = admin.export_ilm_policy(None, {"ism": {"delete_after": "7d"}}, BEAT, "opensearch")
    assert ism["policy"]["states"][0]["transitions"][0]["conditions"] == {"min_index_age": "7d"}
    assert ism["policy"]["ism_template"][0]["index_patterns"] == ["packetbeat-*"]


# -- config --------------------------------------------------------------------------------

def test_site_config_validates(tmp_path: Path) -> None:
    """The shared site config's output.elasticsearch (hosts, username, password) is accepted."""
    from conftest_es import DATA

    path = DATA / "configs" / "packetbeat.yml"
    if not path.exists():
        pytest.skip("shared config missing")
    raw = yaml.safe_load(path.read_text())["output.elasticsearch"]
    raw["password"] = "changeme"
    cfg = plugin.config_model.model_validate(raw)
    assert cfg.hosts == ["localhost:9200"] and cfg.username == "elastic"
    assert cfg.effective().worker_count == 1 and cfg.effective().bulk_max_size == 1600


def test_config_keys_and_refusals() -> None:
    """Every documented key is accepted; unknown keys, api_key with a password, and pins that
    would be silently unchecked are refused; presets apply."""
    full = {
        "hosts": ["https://a:9200", "b"], "protocol": "https", "path": "/es", "parameters": {"refresh": "false"},
        "headers": {"X-A": "1"}, "proxy_url": "http://proxy:3128", "proxy_disable": False, "proxy_headers": {},
        "username": "u", "password": "p", "compression_level": 3, "escape_html": False, "worker": 2,
        "loadbalance": True, "bulk_max_size": 500, "max_retries": -1, "timeout": "30s",
        "backoff": {"init": "500ms", "max": "10s"}, "idle_connection_timeout": "3s", "allow_older_versions": True,
        "index": "x-%{+yyyy}", "indices": [{"index": "y", "when": {"equals": {"type": "dns"}}}],
        "pipeline": "p", "pipelines": [{"pipeline": "q", "mappings": {"a": "b"}, "default": "c"}],
        "non_indexable_policy": {"dead_letter_index": {"index": "dlq"}}, "preset": "custom",
        "ssl": {"enabled": True, "verification_mode": "certificate", "supported_protocols": ["TLSv1.2", "TLSv1.3"],
                "certificate_authorities": ["/ca.pem"], "certificate": "/c.pem", "key": "/k.pem",
                "cipher_suites": [], "curve_types": [], "renegotiation": "never"},
        "enabled": True,  # (a per-output queue is refused before validation: c8c0c78)
    }
    cfg = ElasticsearchConfig.model_validate(full)
    assert cfg.timeout == 30.0 and cfg.backoff.init == 0.5 and cfg.worker_count == 2
    for bad in ({"hostz": ["a"]}, {"api_key": "a:b", "username": "u"}, {"ssl": {"ca_sha256": "abc"}},
                {"compression_level": 10}, {"non_indexable_policy": {"drop": {}, "dead_letter_index": {"index": "d"}}}):
        with pytest.raises(ValueError):
            ElasticsearchConfig.model_validate(bad)
    thr = ElasticsearchConfig.model_validate({"preset": "throughput", "worker": 1}).effective()
    assert (thr.worker_count, thr.bulk_max_size) == (4, 1600)


def test_hosts_and_auth_header() -> None:
    """hosts entries take protocol/path/port 9200 as libbeat does; api_key is sent base64 encoded."""
    assert parse_host("localhost").url == "http://localhost:9200"
    assert parse_host("es:9201", "https", "/x").url == "https://es:9201/x"
    assert parse_host("http://[::1]:9200/p").url == "http://[::1]:9200/p"
    assert auth_header(ElasticsearchConfig(api_key="id:key")) == "ApiKey aWQ6a2V5"
    assert auth_header(ElasticsearchConfig(username="elastic", password="changeme")) == "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="


@pytest.mark.parametrize("root,status,features,expect", [
    ({"version": {"number": "7.17.28", "build_flavor": "unknown"}}, 400, None,
     ("elasticsearch", "create", False, False, False, "packetbeat-0.1.0-%{+yyyy.MM.dd}")),
    ({"version": {"number": "7.17.9", "build_flavor": "default"}}, 200,
     {"features": {"ilm": {"available": True, "enabled": True}, "data_streams": {"available": True, "enabled": True}}},
     ("elasticsearch", "create", True, True, False, "packetbeat-0.1.0")),
    ({"version": {"number": "8.15.1", "build_flavor": "default"}}, 403, {"error": "forbidden"},
     ("elasticsearch", "create", True, True, False, "packetbeat-0.1.0")),
    ({"version": {"number": "8.11.0", "build_flavor": "serverless"}}, 200, {"features": {}},
     ("elasticsearch", "create", False, True, False, "packetbeat-0.1.0")),
    ({"version": {"number": "7.4.2"}}, 404, None,
     ("elasticsearch", "index", False, False, False, "packetbeat-0.1.0-%{+yyyy.MM.dd}")),
    ({"version": {"distribution": "opensearch", "number": "2.19.6"}}, 200, {"policies": []},
     ("opensearch", "create", False, True, True, "packetbeat-0.1.0-%{+yyyy.MM.dd}")),
    ({"version": {"distribution": "opensearch", "number": "1.3.20"}}, 400, None,
     ("opensearch", "create", False, True, False, "packetbeat-0.1.0-%{+yyyy.MM.dd}")),
])
def test_cluster_flavours(root: dict, status: int, features: object, expect: tuple) -> None:
    """Flavour and feature detection (no product check): the bulk action, ILM, data streams,
    ISM and default index for OSS/default ES 7, ES 8 with _xpack forbidden, serverless, old ES,
    and OpenSearch with and without the ISM plugin."""
    from pybeat.outputs.elasticsearch.client import cluster_info

    info = cluster_info(root, status, features)
    got = (info.flavour, info.bulk_op, info.ilm, info.data_streams, info.ism, default_index(BEAT, info))
    assert got == expect


# -- bad input never raises ------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(body=_json, n=st.integers(min_value=0, max_value=6))
def test_any_bulk_response_gives_one_outcome_per_item(body: object, n: int) -> None:
    """Whatever a server or proxy answers, classification returns exactly one outcome per item
    and never acks an item the response does not show as a 2xx."""
    outs = classify_response(body, n)
    assert len(outs) == n
    for i, o in enumerate(outs):
        if o.outcome is Outcome.ACKED:
            items = body["items"]  # type: ignore[index]
            assert isinstance(body, dict) and (body.get("errors") is False or 200 <= next(iter(items[i].values()))["status"] < 300)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.binary(max_size=60).map(lambda b: __import__("base64").b64encode(b).decode()))
def test_cloud_id_decoding_fails_only_with_valueerror(text: str) -> None:
    """Random Cloud IDs decode or raise ValueError with a message; nothing else escapes."""
    try:
        es_url, kb_url = decode_cloud_id(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert es_url.startswith("https://") and kb_url.startswith("https://")


@settings(max_examples=200, deadline=None)
@given(pattern=st.text(alphabet="%{}[]+:.yMdHms-ab'", max_size=30))
def test_format_strings_render_or_report_missing_fields(pattern: str) -> None:
    """Any index pattern compiles; rendering gives a string or a SelectorError, never a crash."""
    try:
        out = FormatString(pattern).render(Event(TS, {"a": "x"}), {})
    except SelectorError:
        return
    assert isinstance(out, str)
