"""add_docker_metadata against a small fake of Docker's API on a unix socket (the calls the
processor makes, answered as the Docker Engine API documents them), and add_kubernetes_metadata
against a fake API server on 127.0.0.1 through a kubeconfig; both without either: one warning,
nothing added, no cost per event."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest

from pybeat.processors.docker import container_id_from_cgroup
from tests.processors.support import ListLogger, ev, http_server, make

CID = "b7e3460e2b21" + "a" * 52
CID2 = "c" * 64
CONTAINERS = [
    {"Id": CID, "Names": ["/dns-cache"], "Image": "example/unbound:1.19",
     "Labels": {"com.docker.compose.project": "edge", "tier": "dns"}, "State": "running"},
    {"Id": CID2, "Names": ["/other"], "Image": "busybox", "Labels": {}, "State": "running"},
]


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def docker_socket(path: str, containers: list):
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.split("?")[0] in ("/containers/json", "/v1.41/containers/json"):
                body, status = json.dumps(containers).encode(), 200
            else:
                body, status = b'{"message":"page not found"}', 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Api-Version", "1.41")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args) -> None:
            pass

    server = _UnixHTTPServer(path, Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def test_docker_present_enriches_by_match_fields_and_short_id(tmp_path):
    sock = str(tmp_path / "docker.sock")
    with docker_socket(sock, CONTAINERS) as seen:
        p = make("add_docker_metadata", {"host": f"unix://{sock}", "match_fields": ["labels.cid"],
                                         "match_short_id": True})
        assert p.wait_ready(5) and p.available
        full = p.run(ev({"labels": {"cid": CID}}))
        short = p.run(ev({"labels": {"cid": CID[:12]}}))
        unknown = p.run(ev({"labels": {"cid": "d" * 64}}))
        p.close()
    assert seen[0] == "/containers/json"
    expected = {"id": CID, "name": "dns-cache", "image": {"name": "example/unbound:1.19"},
                "labels": {"com_docker_compose_project": "edge", "tier": "dns"}}
    assert full.fields["container"] == expected
    assert short.fields["container"] == expected
    assert "container" not in unknown.fields


def test_docker_labels_without_dedot_nest(tmp_path):
    sock = str(tmp_path / "docker.sock")
    with docker_socket(sock, CONTAINERS):
        p = make("add_docker_metadata", {"host": f"unix://{sock}", "match_fields": ["cid"],
                                         "labels": {"dedot": False}})
        assert p.wait_ready(5)
        out = p.run(ev({"cid": CID}))
        p.close()
    assert out.fields["container"]["labels"] == {"com": {"docker": {"compose": {"project": "edge"}}}, "tier": "dns"}


def test_docker_finds_a_process_container_through_its_cgroup(tmp_path):
    """match_pids (process.pid by default) reads <hostfs>/proc/<pid>/cgroup."""
    (tmp_path / "proc" / "4242").mkdir(parents=True)
    (tmp_path / "proc" / "4242" / "cgroup").write_text(f"0::/system.slice/docker-{CID2}.scope\n")
    sock = str(tmp_path / "docker.sock")
    with docker_socket(sock, CONTAINERS):
        p = make("add_docker_metadata", {"host": f"unix://{sock}", "hostfs": str(tmp_path)})
        assert p.wait_ready(5)
        out = p.run(ev({"process": {"pid": 4242}}))
        none = p.run(ev({"process": {"pid": 4343}}))
        p.close()
    assert out.fields["container"] == {"id": CID2, "name": "other", "image": {"name": "busybox"}}
    assert "container" not in none.fields


def test_a_gone_container_is_kept_for_cleanup_timeout(tmp_path):
    sock = str(tmp_path / "docker.sock")
    listed = list(CONTAINERS)
    with docker_socket(sock, listed):
        p = make("add_docker_metadata", {"host": f"unix://{sock}", "match_fields": ["cid"], "cleanup_timeout": "1s",
                                         "refresh": 3600})
        assert p.wait_ready(5)
        listed.clear()
        p.refresh()
        assert p.run(ev({"cid": CID})).fields["container"]["id"] == CID
        time.sleep(1.1)
        p.refresh()
        assert "container" not in p.run(ev({"cid": CID})).fields
        p.close()


def test_cgroup_formats():
    assert container_id_from_cgroup(f"12:memory:/docker/{CID}\n11:cpu:/docker/{CID}\n") == CID
    assert container_id_from_cgroup(f"0::/system.slice/docker-{CID}.scope\n") == CID
    assert container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n") == ""


def test_docker_absent_warns_once_and_costs_nothing(tmp_path):
    log = ListLogger()
    p = make("add_docker_metadata", {"host": f"unix://{tmp_path}/no-such.sock", "match_fields": ["cid"]}, log)
    assert p.wait_ready(5) and not p.available
    p.refresh()
    event = ev({"cid": CID, "process": {"pid": os.getpid()}})
    t0 = time.perf_counter()
    for _ in range(10000):
        p.run(event)
    per_event = (time.perf_counter() - t0) / 10000
    p.close()
    assert log.at("warning") == ["add_docker_metadata: no Docker API; events are not enriched"]
    assert event.fields == {"cid": CID, "process": {"pid": os.getpid()}}
    assert per_event < 5e-6


# -- kubernetes ---------------------------------------------------------------------------------
PODS = {"kind": "PodList", "apiVersion": "v1", "items": [{
    "metadata": {"name": "coredns-5d78c9869d-abcde", "namespace": "kube-system", "uid": "9a1c-uid",
                 "labels": {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d", "app.kubernetes.io/name": "dns"},
                 "annotations": {"note": "x"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "coredns-5d78c9869d", "controller": True}]},
    "spec": {"nodeName": "node-1", "containers": [{"name": "coredns", "ports": [
        {"containerPort": 53, "protocol": "UDP"}, {"containerPort": 9153, "protocol": "TCP"}]}]},
    "status": {"podIP": "10.244.0.5", "containerStatuses": [
        {"name": "coredns", "containerID": f"containerd://{CID2}"}]},
}]}


def test_kubernetes_present_through_a_kubeconfig(tmp_path):
    def pods(h):
        if h.headers.get("Authorization") != "Bearer s3cr3t-token":
            return 401, {}, b'{"kind":"Status","code":401}'
        return 200, {"Content-Type": "application/json"}, json.dumps(PODS).encode()

    with http_server({("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"): pods}) as (host, seen):
        kc = tmp_path / "kubeconfig"
        kc.write_text(f"""apiVersion: v1
kind: Config
current-context: test
clusters: [{{name: c, cluster: {{server: "http://{host}"}}}}]
users: [{{name: u, user: {{token: s3cr3t-token}}}}]
contexts: [{{name: test, context: {{cluster: c, user: u}}}}]
""")
        p = make("add_kubernetes_metadata", {"kube_config": str(kc), "node": "node-1",
                                             "matchers": [{"fields": {"lookup_fields": ["destination.ip"]}}],
                                             "indexers": [{"container": {}}],
                                             "include_annotations": ["note"]})
        assert p.wait_ready(5) and p.available
        by_ip = p.run(ev({"destination": {"ip": "10.244.0.5", "port": 53}}))
        by_fmt = p.run(ev({"ip": "10.244.0.5", "port": 9153}))
        miss = p.run(ev({"destination": {"ip": "10.0.0.9"}}))
        has = p.run(ev({"destination": {"ip": "10.244.0.5"}, "kubernetes": {"pod": {"name": "kept"}}}))
        p.close()
    pod = {"pod": {"name": "coredns-5d78c9869d-abcde", "uid": "9a1c-uid", "ip": "10.244.0.5"},
           "namespace": "kube-system", "node": {"name": "node-1"},
           "labels": {"k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d", "app_kubernetes_io/name": "dns"},
           "annotations": {"note": "x"}, "replicaset": {"name": "coredns-5d78c9869d"}}
    assert by_ip.fields["kubernetes"] == pod
    assert by_fmt.fields["kubernetes"] == {**pod, "container": {"name": "coredns"}}
    assert "kubernetes" not in miss.fields
    assert has.fields["kubernetes"] == {"pod": {"name": "kept"}}


def test_kubernetes_absent_warns_once_and_costs_nothing(monkeypatch):
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    log = ListLogger()
    p = make("add_kubernetes_metadata", {}, log)
    event = ev({"ip": "10.244.0.5", "port": 53})
    t0 = time.perf_counter()
    for _ in range(10000):
        p.run(event)
    per_event = (time.perf_counter() - t0) / 10000
    assert not p.available and event.fields == {"ip": "10.244.0.5", "port": 53}
    assert len(log.at("warning")) == 1 and per_event < 5e-6
