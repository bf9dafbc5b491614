"""add_cloud_metadata against a local server that answers like each provider's documented
metadata API (on 127.0.0.1, through the test-only host override; never a real metadata
address)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pybeat.processors.cloud import PROVIDERS_ENV, TEST_HOST_ENV, select_providers, test_host
from tests.conftest import DATA
from tests.processors.support import ListLogger, ev, http_server, make

AWS_DOC = json.dumps({
    "accountId": "111111111111111", "region": "us-east-1", "availabilityZone": "us-east-1c",
    "instanceId": "i-11111111", "imageId": "ami-abcd1234", "instanceType": "t2.medium",
    "privateIp": "10.0.0.1", "version": "2017-09-30", "architecture": "x86_64",
})
AWS_CLOUD = {
    "provider": "aws", "account": {"id": "111111111111111"}, "instance": {"id": "i-11111111"},
    "machine": {"type": "t2.medium"}, "image": {"id": "ami-abcd1234"}, "region": "us-east-1",
    "availability_zone": "us-east-1c", "service": {"name": "EC2"},
}
GCP_DOC = json.dumps({
    "instance": {
        "attributes": {"cluster-name": "staging-marketing-k8s",
                       "kubeconfig": "apiVersion: v1\nclusters:\n- cluster:\n    server: https://35.223.150.34\n  name: k\n"},
        "hostname": "test-gce-dev.c.test-dev.internal", "id": 3910564293633576924, "name": "test-gce-dev",
        "machineType": "projects/111111111111/machineTypes/f1-micro",
        "zone": "projects/111111111111/zones/us-east1-b",
    },
    "project": {"numericProjectId": 111111111111, "projectId": "test-dev"},
})
AZURE_DOC = json.dumps({
    "location": "eastus2", "name": "test-az-vm", "offer": "UbuntuServer", "osType": "Linux",
    "vmId": "04ab04c3-63de-4709-a9f9-9ab8c0411d5e", "vmSize": "Standard_D3_v2",
    "subscriptionId": "5tfb04c3-63de-4709-a9f9-9ab8c0411d5e", "resourceGroupName": "rg",
})


@pytest.fixture
def override(monkeypatch):
    def point_at(host: str) -> None:
        monkeypatch.setenv(TEST_HOST_ENV, host)
        monkeypatch.delenv(PROVIDERS_ENV, raising=False)

    return point_at


def _run(settings: dict, event=None):
    p = make("add_cloud_metadata", settings, ListLogger())
    assert p.wait()
    return p, p.run(event or ev())


def _aws_token(handler):
    if handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds") != "21600":
        return 400, {}, b"missing ttl"
    return 200, {}, b"AQAEAFakeToken=="


def _aws_doc(handler):
    if handler.headers.get("X-aws-ec2-metadata-token") != "AQAEAFakeToken==":
        return 401, {}, b"IMDSv2 token required"
    return 200, {"Content-Type": "text/plain"}, AWS_DOC.encode()


def test_aws_imdsv2_asks_for_a_token_then_the_identity_document(override):
    with http_server({("PUT", "/latest/api/token"): _aws_token,
                      ("GET", "/latest/dynamic/instance-identity/document"): _aws_doc}) as (host, seen):
        override(host)
        p, out = _run({"providers": ["aws"]})
    assert out.fields == {"cloud": AWS_CLOUD}
    assert [(m, path) for m, path, _ in seen] == [("PUT", "/latest/api/token"),
                                                  ("GET", "/latest/dynamic/instance-identity/document")]


def test_aws_falls_back_to_imdsv1_when_the_token_call_is_refused(override):
    with http_server({("PUT", "/latest/api/token"): lambda h: (403, {}, b"forbidden"),
                      ("GET", "/latest/dynamic/instance-identity/document"): AWS_DOC}) as (host, _):
        override(host)
        _, out = _run({"providers": ["ec2"]})
    assert out.fields["cloud"] == AWS_CLOUD


def test_gcp_needs_the_flavor_header_and_trims_paths(override):
    def gcp(h):
        if h.headers.get("Metadata-Flavor") != "Google":
            return 403, {}, b"Missing Metadata-Flavor:Google header."
        return 200, {"Metadata-Flavor": "Google"}, GCP_DOC.encode()

    with http_server({("GET", "/computeMetadata/v1/?recursive=true&alt=json"): gcp}) as (host, _):
        override(host)
        _, out = _run({"providers": ["gcp"]})
    assert out.fields == {
        "cloud": {"provider": "gcp", "instance": {"id": "3910564293633576924", "name": "test-gce-dev"},
                  "machine": {"type": "f1-micro"}, "availability_zone": "us-east1-b", "region": "us-east1",
                  "project": {"id": "test-dev"}, "account": {"id": "test-dev"}, "service": {"name": "GCE"}},
        "orchestrator": {"cluster": {"name": "staging-marketing-k8s", "url": "https://35.223.150.34"}},
    }


def test_azure(override):
    def azure(h):
        if h.headers.get("Metadata") != "true":
            return 400, {}, b"Required metadata header not specified"
        return 200, {}, AZURE_DOC.encode()

    with http_server({("GET", "/metadata/instance/compute?api-version=2021-02-01"): azure}) as (host, _):
        override(host)
        _, out = _run({"providers": ["azure"]})
    assert out.fields == {"cloud": {
        "provider": "azure", "instance": {"id": "04ab04c3-63de-4709-a9f9-9ab8c0411d5e", "name": "test-az-vm"},
        "machine": {"type": "Standard_D3_v2"}, "account": {"id": "5tfb04c3-63de-4709-a9f9-9ab8c0411d5e"},
        "service": {"name": "Virtual Machines"}, "region": "eastus2"}}


def test_digitalocean(override):
    doc = json.dumps({"droplet_id": 1111111, "hostname": "sample-droplet", "region": "nyc3",
                      "interfaces": {"public": [{"ipv4": {"ip_address": "192.0.2.1"}}]}})
    with http_server({("GET", "/metadata/v1.json"): doc}) as (host, _):
        override(host)
        _, out = _run({"providers": ["digitalocean"]})
    assert out.fields == {"cloud": {"provider": "digitalocean", "instance": {"id": "1111111"}, "region": "nyc3",
                                    "service": {"name": "Droplets"}}}


def test_openstack_nova(override):
    routes = {("GET", "/2009-04-04/meta-data/instance-id"): "i-0000ffac",
              ("GET", "/2009-04-04/meta-data/instance-type"): "m1.xlarge",
              ("GET", "/2009-04-04/meta-data/hostname"): "testvm01.stack.cloud",
              ("GET", "/2009-04-04/meta-data/placement/availability-zone"): "az-test-2"}
    with http_server(routes) as (host, _):
        override(host)
        _, out = _run({"providers": ["openstack"]})
    assert out.fields == {"cloud": {"provider": "openstack", "instance": {"id": "i-0000ffac",
                                                                          "name": "testvm01.stack.cloud"},
                                    "machine": {"type": "m1.xlarge"}, "availability_zone": "az-test-2",
                                    "service": {"name": "Nova"}}}


def test_hetzner(override):
    routes = {("GET", "/hetzner/v1/metadata/instance-id"): "111111",
              ("GET", "/hetzner/v1/metadata/hostname"): "my-hetzner-instance",
              ("GET", "/hetzner/v1/metadata/availability-zone"): "hel1-dc2",
              ("GET", "/hetzner/v1/metadata/region"): "eu-central"}
    with http_server(routes) as (host, _):
        override(host)
        _, out = _run({"providers": ["hetzner"]})
    assert out.fields == {"cloud": {"provider": "hetzner", "instance": {"id": "111111", "name": "my-hetzner-instance"},
                                    "availability_zone": "hel1-dc2", "region": "eu-central",
                                    "service": {"name": "Cloud"}}}


@pytest.mark.parametrize("name,routes,expected", [
    ("qcloud", {("GET", "/meta-data/instance-id"): "ins-qcloudv5", ("GET", "/meta-data/placement/region"): "china-south-gz",
                ("GET", "/meta-data/placement/zone"): "gz-azone2"},
     {"provider": "qcloud", "instance": {"id": "ins-qcloudv5"}, "region": "china-south-gz",
      "availability_zone": "gz-azone2", "service": {"name": "CVM"}}),
    ("alibaba", {("GET", "/latest/meta-data/instance-id"): "i-wz9g2hqiikg0aliyun2b",
                 ("GET", "/latest/meta-data/region-id"): "cn-shenzhen", ("GET", "/latest/meta-data/zone-id"): "cn-shenzhen-a"},
     {"provider": "ecs", "instance": {"id": "i-wz9g2hqiikg0aliyun2b"}, "region": "cn-shenzhen",
      "availability_zone": "cn-shenzhen-a", "service": {"name": "ECS"}}),
])
def test_providers_off_by_default_work_when_named(override, name, routes, expected):
    with http_server(routes) as (host, _):
        override(host)
        _, out = _run({"providers": [name]})
    assert out.fields == {"cloud": expected}


def test_aws_wins_over_openstack_when_both_answer(override):
    """OpenStack serves EC2's API too: Beats prefers the AWS answer."""
    routes = {("PUT", "/latest/api/token"): _aws_token, ("GET", "/latest/dynamic/instance-identity/document"): _aws_doc,
              ("GET", "/2009-04-04/meta-data/instance-id"): "i-0000ffac",
              ("GET", "/2009-04-04/meta-data/instance-type"): "m1.xlarge",
              ("GET", "/2009-04-04/meta-data/hostname"): "vm", ("GET", "/2009-04-04/meta-data/placement/availability-zone"): "az"}
    with http_server(routes) as (host, _):
        override(host)
        _, out = _run({"providers": ["openstack", "aws"]})
    assert out.fields["cloud"]["provider"] == "aws"


def test_overwrite_false_keeps_an_existing_cloud_object_and_true_replaces_it(override):
    routes = {("PUT", "/latest/api/token"): _aws_token, ("GET", "/latest/dynamic/instance-identity/document"): _aws_doc}
    with http_server(routes) as (host, _):
        override(host)
        _, kept = _run({"providers": ["aws"]}, ev({"cloud": {"instance": {"id": "i-22222222"}}}))
        _, replaced = _run({"providers": ["aws"], "overwrite": True}, ev({"cloud": {"instance": {"id": "i-22222222"}}}))
    assert kept.fields == {"cloud": {"instance": {"id": "i-22222222"}}}
    assert replaced.fields == {"cloud": AWS_CLOUD}


def test_events_never_share_the_cached_document(override):
    routes = {("PUT", "/latest/api/token"): _aws_token, ("GET", "/latest/dynamic/instance-identity/document"): _aws_doc}
    with http_server(routes) as (host, _):
        override(host)
        p, first = _run({"providers": ["aws"]})
    first.fields["cloud"]["region"] = "changed"
    assert p.run(ev()).fields["cloud"]["region"] == "us-east-1"


def test_no_provider_answering_adds_nothing_and_each_event_costs_no_wait(override):
    def slow(h):
        time.sleep(1.5)
        return 200, {}, AWS_DOC.encode()

    with http_server({("PUT", "/latest/api/token"): lambda h: (404, {}, b""),
                      ("GET", "/latest/dynamic/instance-identity/document"): slow}) as (host, _):
        override(host)
        t0 = time.monotonic()
        p = make("add_cloud_metadata", {"providers": ["aws"], "timeout": "300ms"})
        created = time.monotonic() - t0
        first = p.run(ev())  # waits for what is left of the 300 ms, once
        waited = time.monotonic() - t0
        t1 = time.monotonic()
        for _ in range(1000):
            p.run(ev())
        per_event = (time.monotonic() - t1) / 1000
    assert created < 0.1 and waited < 0.6
    assert first.fields == {}
    assert per_event < 0.001


def test_a_refused_connection_is_no_provider(override):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    override(f"127.0.0.1:{port}")
    p, out = _run({"timeout": "1s"})  # every default provider, all refused
    assert out.fields == {} and p.provider is None and len(p.errors) == 7


def test_the_test_host_override_accepts_only_loopback_addresses():
    log = ListLogger()
    assert test_host({TEST_HOST_ENV: "127.0.0.1:8080"}) == "127.0.0.1:8080"
    assert test_host({TEST_HOST_ENV: "[::1]:8080"}) == "[::1]:8080"
    assert test_host({TEST_HOST_ENV: "169.254.169.254:80"}, log) is None
    assert test_host({TEST_HOST_ENV: "evil.example:80"}, log) is None
    assert test_host({}) is None
    assert len(log.at("warning")) == 2


def test_provider_selection_as_beats():
    keys = lambda ps: sorted(p.key for p in ps)  # noqa: E731
    assert keys(select_providers(None, {})) == ["aws-ec2", "azure-compute", "digitalocean", "google-gce",
                                                "hetzner-cloud", "openstack-nova", "openstack-nova-ssl"]
    assert keys(select_providers(["aws", "ec2", "huawei"], {})) == ["aws-ec2", "openstack-nova"]
    assert keys(select_providers(["aws"], {PROVIDERS_ENV: "gcp, tencent"})) == ["google-gce", "tencent-qcloud"]
    assert select_providers(None, {PROVIDERS_ENV: ""}) == []


def test_an_unknown_provider_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown provider 'amazon'"):
        make("add_cloud_metadata", {"providers": ["amazon"]})


def test_the_stock_chain_with_a_silent_metadata_service_adds_nothing_and_does_not_wait(tmp_path):
    """The processors of Packetbeat's own packetbeat.yml, with every provider's metadata service
    a loopback listener that accepts connections and never answers (the test-only host
    override; no real metadata address is ever asked): nothing added after Beats' timeout,
    no per-event wait."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel completes the handshakes; nobody reads or answers
    script = f"""
import json, time, sys
from pybeat.config import load
from pybeat.plugins import load_registry
from pybeat.processors import build_processors
from pybeat.api import BeatInfo, Event
raw = load({str(DATA / "configs/stock/8.x/packetbeat.yml")!r}, env={{}})
chain = build_processors(raw.data["processors"], load_registry(), BeatInfo(), "processors")
t0 = time.monotonic()
out = chain.run(Event(0, {{"type": "dns"}}))
first = time.monotonic() - t0
t1 = time.monotonic()
for _ in range(200):
    chain.run(Event(0, {{"type": "dns"}}))
print(json.dumps({{"first": first, "rest": (time.monotonic() - t1) / 200, "fields": sorted(out.fields)}}))
"""
    env = {k: v for k, v in os.environ.items() if k != PROVIDERS_ENV}
    env[TEST_HOST_ENV] = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    finally:
        silent.close()
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "cloud" not in res["fields"] and "host" in res["fields"]
    assert res["first"] < 3.5 and res["rest"] < 0.01
