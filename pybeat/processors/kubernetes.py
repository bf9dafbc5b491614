"""``add_kubernetes_metadata``: ``kubernetes.*`` of the pod an event belongs to, as libbeat's
processor with Packetbeat's defaults (the ``ip_port`` indexer and the ``field_format``
matcher ``%{[ip]}:%{[port]}``).

Where it runs: in a cluster (``KUBERNETES_SERVICE_HOST``/``_PORT`` and the service account's
token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``), or with ``kube_config``
(or ``KUBECONFIG``) naming a kubeconfig file. Anywhere else one warning is logged and ``run``
returns at its first line: no cost per event.

A background thread lists the pods of this node (``node``, else ``NODE_NAME``, else the host
name; every pod with ``scope: cluster``) from the API server every ``sync_period`` (pybeat
polls, Beats watches) and indexes them; ``run`` only looks keys up in that index.

Indexers: ``ip_port`` (``<pod ip>`` and ``<pod ip>:<container port>``), ``container``
(container ids), ``pod_name`` (``<namespace>/<name>``), ``pod_uid``. Matchers: ``fields``
(``lookup_fields``), ``field_format`` (``format`` with ``%{[field]}`` references).
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import threading
import time
from typing import Any

from pybeat.api import Duration, Event, PluginConfig, ProcessorContext

from ._fields import MISSING, get_value

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Enabled(PluginConfig):
    enabled: bool = True


class Dedot(PluginConfig):
    dedot: bool = True


class AddKubernetesMetadataConfig(PluginConfig):
    in_cluster: bool = True
    kube_config: str = ""
    host: str = ""
    node: str = ""
    namespace: str = ""
    scope: str = "node"
    sync_period: Duration = 600.0
    cleanup_timeout: Duration = 60.0
    default_indexers: Enabled = Enabled()
    default_matchers: Enabled = Enabled()
    indexers: list[dict[str, Any]] = []
    matchers: list[dict[str, Any]] = []
    labels: Dedot = Dedot()
    annotations: Dedot = Dedot()
    include_labels: list[str] = []
    exclude_labels: list[str] = []
    include_annotations: list[str] = []
    add_resource_metadata: dict[str, Any] = {}
    kube_client_options: dict[str, Any] = {}
    #: pybeat: how often the pod list is read again (Beats watches); at most ``sync_period``
    refresh: Duration = 10.0


class ApiServer:
    """Where the API server is and how to authenticate, from the in-cluster service account or
    a kubeconfig file (token, or client certificate; CA file or data)."""

    def __init__(self, url: str, token: str | None, context: Any):
        self.url = url.rstrip("/")
        self.token = token
        self.context = context

    @classmethod
    def discover(cls, config: AddKubernetesMetadataConfig, env: Any = os.environ) -> "ApiServer | None":
        path = config.kube_config or env.get("KUBECONFIG", "")
        if path:
            return cls.from_kubeconfig(path)
        if config.in_cluster and env.get("KUBERNETES_SERVICE_HOST") and os.path.exists(f"{SA_DIR}/token"):
            import ssl

            host, port = env["KUBERNETES_SERVICE_HOST"], env.get("KUBERNETES_SERVICE_PORT", "443")
            if ":" in host:
                host = f"[{host}]"
            with open(f"{SA_DIR}/token", encoding="utf-8") as fh:
                token = fh.read().strip()
            ctx = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt" if os.path.exists(f"{SA_DIR}/ca.crt") else None)
            return cls(f"https://{host}:{port}", token, ctx)
        return None

    @classmethod
    def from_kubeconfig(cls, path: str) -> "ApiServer":
        import base64
        import ssl
        import tempfile

        import yaml

        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            conf = yaml.safe_load(fh) or {}
        contexts = {c["name"]: c.get("context", {}) for c in conf.get("contexts") or []}
        current = contexts.get(conf.get("current-context", ""), {})
        clusters = {c["name"]: c.get("cluster", {}) for c in conf.get("clusters") or []}
        users = {u["name"]: u.get("user", {}) for u in conf.get("users") or []}
        cluster = clusters.get(current.get("cluster", ""), next(iter(clusters.values()), {}))
        user = users.get(current.get("user", ""), next(iter(users.values()), {}))
        server = cluster.get("server")
        if not server:
            raise ValueError(f"{path}: no cluster server")
        ctx = None
        if server.startswith("https://"):
            ctx = ssl.create_default_context()
            if cluster.get("certificate-authority-data"):
                ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
            elif cluster.get("certificate-authority"):
                ctx.load_verify_locations(cafile=cluster["certificate-authority"])
            if cluster.get("insecure-skip-tls-verify"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            cert, key = user.get("client-certificate"), user.get("client-key")
            tmp: list[str] = []
            try:
                for field in ("client-certificate-data", "client-key-data"):
                    if user.get(field):
                        fd, name = tempfile.mkstemp(prefix="pybeat-k8s-")
                        os.write(fd, base64.b64decode(user[field]))
                        os.close(fd)
                        tmp.append(name)
                        if field.startswith("client-certificate"):
                            cert = name
                        else:
                            key = name
                if cert and key:
                    ctx.load_cert_chain(cert, key)
            finally:
                for name in tmp:
                    os.unlink(name)
        token = user.get("token")
        if not token and user.get("tokenFile"):
            with open(user["tokenFile"], encoding="utf-8") as fh:
                token = fh.read().strip()
        return cls(server, token, ctx)

    def get(self, path: str, timeout: float = 10.0) -> Any:
        from ._http import request

        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        resp = request("GET", self.url + path, headers=headers, deadline=time.monotonic() + timeout,
                       context=self.context)
        return json.loads(resp.body)


def _dedot(d: dict[str, Any], dedot: bool) -> dict[str, Any]:
    return {k.replace(".", "_"): v for k, v in d.items()} if dedot else dict(d)


_REF = re.compile(r"%\{\[([^\]]+)\]\}")


class AddKubernetesMetadata:
    def __init__(self, config: AddKubernetesMetadataConfig, api: ApiServer | None, logger: Any = None):
        self.config = config
        self.api = api
        self.logger = logger
        self.available = False
        self.refreshes = self.refresh_errors = self.misses = 0
        self._index: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[dict[str, Any], float]] = {}
        indexers = [next(iter(i)) for i in config.indexers if i]
        if config.default_indexers.enabled:
            indexers.append("ip_port")
        self._indexers = indexers
        matchers: list[tuple[str, Any]] = []
        for m in config.matchers:
            for kind, settings in m.items():
                matchers.append((kind, settings or {}))
        if config.default_matchers.enabled:
            matchers.append(("field_format", {"format": "%{[ip]}:%{[port]}"}))
        self._matchers = matchers
        self._stop = threading.Event()
        self._first = threading.Event()
        if api is None:
            if logger is not None:
                logger.warning("add_kubernetes_metadata: not in a Kubernetes cluster and no kube_config; "
                               "events are not enriched")
            self._first.set()
        else:
            threading.Thread(target=self._watch, name="add_kubernetes_metadata", daemon=True).start()

    # -- the pod index (background) ------------------------------------------------------------
    def _node(self) -> str:
        return self.config.node or os.environ.get("NODE_NAME", "") or socket.gethostname()

    def _watch(self) -> None:
        period = min(self.config.refresh, self.config.sync_period)
        while not self._stop.is_set():
            self.refresh()
            self._first.set()
            self._stop.wait(period)

    def refresh(self) -> None:
        assert self.api is not None
        ns = self.config.namespace
        path = f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods"
        if self.config.scope != "cluster":
            path += f"?fieldSelector=spec.nodeName%3D{self._node()}"
        try:
            pods = self.api.get(path).get("items") or []
        except Exception as exc:
            self.refresh_errors += 1
            if self.logger is not None and self.refresh_errors == 1:
                self.logger.warning("add_kubernetes_metadata: cannot list pods", error=str(exc)[:200])
            return
        now = time.monotonic()
        seen = {k: v for k, v in self._seen.items() if now - v[1] < self.config.cleanup_timeout}
        for pod in pods:
            for key, meta in self._keys(pod):
                seen[key] = (meta, now)
        self._seen = seen
        self._index = {k: v[0] for k, v in seen.items()}
        self.refreshes += 1
        self.available = True

    def _pod_meta(self, pod: dict[str, Any]) -> dict[str, Any]:
        md = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        k8s: dict[str, Any] = {"pod": {"name": md.get("name"), "uid": md.get("uid")},
                               "namespace": md.get("namespace")}
        if status.get("podIP"):
            k8s["pod"]["ip"] = status["podIP"]
        if spec.get("nodeName"):
            k8s["node"] = {"name": spec["nodeName"]}
        labels = dict(md.get("labels") or {})
        if self.config.include_labels:
            labels = {k: v for k, v in labels.items() if k in self.config.include_labels}
        labels = {k: v for k, v in labels.items() if k not in self.config.exclude_labels}
        if labels:
            k8s["labels"] = _dedot(labels, self.config.labels.dedot)
        annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k in self.config.include_annotations}
        if annotations:
            k8s["annotations"] = _dedot(annotations, self.config.annotations.dedot)
        for ref in md.get("ownerReferences") or []:
            kind = {"ReplicaSet": "replicaset", "StatefulSet": "statefulset", "DaemonSet": "daemonset",
                    "Job": "job"}.get(ref.get("kind", ""))
            if kind and ref.get("controller", True):
                k8s[kind] = {"name": ref.get("name")}
        return {"kubernetes": k8s}

    def _keys(self, pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        base = self._pod_meta(pod)
        md = pod.get("metadata") or {}
        ip = (pod.get("status") or {}).get("podIP")
        out: list[tuple[str, dict[str, Any]]] = []
        containers = (pod.get("spec") or {}).get("containers") or []
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        for kind in self._indexers:
            if kind == "ip_port" and ip:
                out.append((ip, base))
                for c in containers:
                    for p in c.get("ports") or []:
                        if p.get("containerPort"):
                            meta = {"kubernetes": {**base["kubernetes"], "container": {"name": c.get("name")}}}
                            out.append((f"{ip}:{p['containerPort']}", meta))
            elif kind == "pod_name":
                out.append((f"{md.get('namespace')}/{md.get('name')}", base))
            elif kind == "pod_uid" and md.get("uid"):
                out.append((md["uid"], base))
            elif kind == "container":
                for name, st in statuses.items():
                    cid = (st.get("containerID") or "").split("://")[-1]
                    if cid:
                        meta = {"kubernetes": {**base["kubernetes"], "container": {"name": name}},
                                "container": {"id": cid}}
                        out.append((cid, meta))
        return out

    def wait_ready(self, timeout: float) -> bool:
        return self._first.wait(timeout)

    def close(self) -> None:
        self._stop.set()

    # -- per event -------------------------------------------------------------------------------
    def _lookup_keys(self, event: Event) -> list[str]:
        keys: list[str] = []
        for kind, settings in self._matchers:
            if kind == "fields":
                for f in settings.get("lookup_fields") or []:
                    v = get_value(event, f)
                    if v is not MISSING and v is not None:
                        keys.append(str(v))
            elif kind == "field_format":
                fmt = str(settings.get("format", ""))
                missing = False

                def sub(m: re.Match[str]) -> str:
                    nonlocal missing
                    v = get_value(event, m.group(1))
                    if v is MISSING or v is None:
                        missing = True
                        return ""
                    return str(v)

                key = _REF.sub(sub, fmt)
                if not missing and key:
                    keys.append(key)
        return keys

    def run(self, event: Event) -> Event:
        if not self.available:
            return event
        if "kubernetes" in event.fields:
            return event
        for key in self._lookup_keys(event):
            meta = self._index.get(key)
            if meta is not None:
                for top, value in meta.items():
                    current = event.fields.get(top)
                    if isinstance(current, dict):
                        current.update(copy.deepcopy(value))
                    else:
                        event.fields[top] = copy.deepcopy(value)
                return event
        self.misses += 1
        return event


class AddKubernetesMetadataPlugin:
    name = "add_kubernetes_metadata"
    api_version = "1.0"
    config_model = AddKubernetesMetadataConfig

    def create(self, config: AddKubernetesMetadataConfig, ctx: ProcessorContext) -> AddKubernetesMetadata:
        try:
            api = ApiServer.discover(config)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if ctx.logger is not None:
                ctx.logger.warning("add_kubernetes_metadata: cannot read the kubeconfig", error=str(exc)[:200])
            api = None
        return AddKubernetesMetadata(config, api, ctx.logger)


add_kubernetes_metadata = AddKubernetesMetadataPlugin()
