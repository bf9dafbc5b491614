"""The index template and the lifecycle policies, as pure data. No I/O except reading the
user's own files named in ``setup.*``.

Owns: mappings from the field list (what the agent and the enabled protocols declare, handed
in as ``OutputContext.field_types``; names with ``*`` become dynamic templates; strings not
listed are keywords),
composable (``_index_template``, ES >= 7.8 and OpenSearch) or legacy (``_template``) bodies,
data stream or plain indices, Beats' default ILM policy and an ISM policy for OpenSearch.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

import yaml

from pybeat.api import BeatInfo

__all__ = ["TemplateTarget", "build_template", "field_types", "ilm_policy", "ism_policy", "mappings"]


# The fields Kibana's query bar searches by default (the part of Beats' list that we emit).
DEFAULT_FIELDS = [
    "message", "tags", "agent.name", "agent.type", "host.name", "type", "status", "method", "query",
    "resource", "path", "network.protocol", "network.transport", "dns.question.name",
    "dns.question.registered_domain", "dns.response_code", "error.message",
]


class TemplateTarget:
    """What the template is for: which engine and version, data stream or not."""

    def __init__(self, flavour: str = "elasticsearch", version: tuple[int, int, int] = (8, 0, 0),
                 data_stream: bool | None = None):
        self.flavour = flavour
        self.version = version
        self.data_stream = (flavour == "elasticsearch" and version >= (8, 0, 0)) if data_stream is None else data_stream

    @classmethod
    def parse(cls, text: str | None) -> "TemplateTarget":
        """``--es.version`` values: ``8.15.0``, ``7.17.0``, ``opensearch:2.19.0`` (or ``os-2.19``)."""
        if not text:
            return cls()
        flavour = "elasticsearch"
        t = text.strip().lower()
        for prefix in ("opensearch:", "opensearch-", "os-", "os:", "opensearch"):
            if t.startswith(prefix):
                flavour, t = "opensearch", t[len(prefix):]
                break
        nums = [int(p) if p.isdigit() else 0 for p in (t.split("-")[0].split(".") + ["0", "0", "0"])[:3]]
        return cls(flavour, (nums[0], nums[1], nums[2]))

    @property
    def composable(self) -> bool:
        return self.flavour == "opensearch" or self.version >= (7, 8, 0)

    @property
    def match_only_text(self) -> bool:
        return self.flavour == "elasticsearch" and self.version >= (7, 14, 0)


_BEAT_FIELDS = {"agent.version": "version", "beat.version": "version", "observer.version": "version",
                "agent.type": "beat", "beat.name": "beat"}


def expand_beat_fields(text: str, beat: BeatInfo) -> str:
    """``packetbeat-%{[agent.version]}`` (Beats' default template name and pattern) with the
    running agent's values, as libbeat expands them for ``setup.template.*``."""
    for field, attr in _BEAT_FIELDS.items():
        text = text.replace(f"%{{[{field}]}}", str(getattr(beat, attr)))
    return text.lower()


def section(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when it is a mapping, else an empty one (settings may be absent or None)."""
    value = parent.get(key) if isinstance(parent, Mapping) else None
    return value if isinstance(value, dict) else {}


@lru_cache(maxsize=4)
def _load_fields(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return {str(k): str(v) for k, v in data.items()}


def field_types(base: Mapping[str, str], extra_file: str | None = None,
                append: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """Dotted field name -> type: what the agent and the enabled protocols declare
    (``OutputContext.field_types``), a user ``fields`` file, ``append_fields``."""
    types = dict(base)
    if extra_file:
        types.update(_load_fields(extra_file))
    for item in append or []:
        if isinstance(item, dict) and item.get("name") and item.get("type"):
            types[str(item["name"])] = str(item["type"])
    return types


def _leaf(ftype: str, target: TemplateTarget) -> dict[str, Any]:
    if ftype == "match_only_text" and not target.match_only_text:
        ftype = "text"
    if ftype == "keyword":
        return {"type": "keyword", "ignore_above": 1024}
    if ftype == "date":
        return {"type": "date"}
    if ftype == "object":
        return {"type": "object"}
    return {"type": ftype}


def mappings(types: dict[str, str], target: TemplateTarget, beat: BeatInfo) -> dict[str, Any]:
    props: dict[str, Any] = {}
    dynamic: list[dict[str, Any]] = []
    for name in sorted(types):
        if "*" in name:  # "dns.answers.*: keyword": everything below a path, as a dynamic template
            leaf = _leaf(types[name], target)
            dynamic.append({f"{name.replace('.*', '').replace('*', '').replace('.', '_')}_as_{leaf['type']}":
                            {"path_match": name, "mapping": leaf}})
            continue
        node = props
        parts = name.split(".")
        for part in parts[:-1]:
            entry = node.get(part)
            if not isinstance(entry, dict) or "properties" not in entry:
                entry = node[part] = {"properties": {}}  # an object with children, not a leaf
            node = entry["properties"]
        leaf = _leaf(types[name], target)
        if leaf["type"] == "object" and parts[-1] in node:
            continue
        node[parts[-1]] = leaf
    return {
        "_meta": {"beat": beat.beat, "version": beat.version, "product": beat.product},
        "date_detection": False,
        "dynamic_templates": dynamic + [
            {"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}},
        ],
        "properties": props,
    }


def _nested_settings(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"index.number_of_shards": 1}`` and nested forms merged into one nested mapping."""
    out: dict[str, Any] = {}

    def put(path: list[str], value: Any) -> None:
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        if isinstance(value, dict):
            for k, v in value.items():
                put(path + str(k).split("."), v)
        else:
            node[path[-1]] = value

    for k, v in flat.items():
        put(str(k).split("."), v)
    return out


def build_template(
    setup: Mapping[str, Any], beat: BeatInfo, target: TemplateTarget, ilm_policy_name: str | None = None,
    declared: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(name, body)`` of the index template for ``setup.template.*`` and the target."""
    tcfg = section(setup, "template")
    base = f"{beat.beat}-{beat.version}".lower()
    name = expand_beat_fields(str(tcfg.get("name") or base), beat)
    pattern = expand_beat_fields(str(tcfg.get("pattern") or f"{base}*"), beat)
    json_cfg = section(tcfg, "json")
    if json_cfg.get("enabled") and json_cfg.get("path"):
        with open(str(json_cfg["path"]), encoding="utf-8") as fh:
            loaded: dict[str, Any] = json.load(fh)
        return str(json_cfg.get("name") or name), loaded
    types = field_types(declared or {}, tcfg.get("fields"), tcfg.get("append_fields"))
    user = _nested_settings(section(tcfg, "settings"))
    index_settings: dict[str, Any] = {
        "refresh_interval": "5s",
        "mapping": {"total_fields": {"limit": 10000}},
        "query": {"default_field": DEFAULT_FIELDS},
        "max_docvalue_fields_search": 200,
    }
    if ilm_policy_name and target.flavour == "elasticsearch":
        index_settings["lifecycle"] = {"name": ilm_policy_name}
    settings: dict[str, Any] = {"index": index_settings}
    # setup.template.settings.index.* / ._source are the user's; they win.
    for k, v in user.items():
        if k == "_source":
            continue
        if k == "index" and isinstance(v, dict):
            index_settings.update(v)
        else:
            settings[k] = v
    maps = mappings(types, target, beat)
    if isinstance(user.get("_source"), dict):
        maps["_source"] = user["_source"]
    priority = int(tcfg.get("priority") or 150)
    if target.composable:
        body: dict[str, Any] = {
            "index_patterns": [pattern],
            "priority": priority,
            "template": {"settings": settings, "mappings": maps},
            "_meta": {"beat": beat.beat, "version": beat.version, "managed_by": beat.product},
        }
        if target.data_stream:
            body["data_stream"] = {}
    else:
        body = {"index_patterns": [pattern], "order": 1, "settings": settings, "mappings": maps}
    return name, body


def ilm_policy(setup: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Beats' default ILM policy (rollover at 30 days or 50 GB per primary shard), or the file."""
    icfg = section(setup, "ilm")
    name = str(icfg.get("policy_name") or "packetbeat")
    if icfg.get("policy_file"):
        with open(str(icfg["policy_file"]), encoding="utf-8") as fh:
            policy: dict[str, Any] = json.load(fh)
        return name, policy
    return name, {
        "policy": {
            "phases": {
                "hot": {"actions": {"rollover": {"max_age": "30d", "max_primary_shard_size": "50gb"}}},
            }
        }
    }


def ism_policy(setup: dict[str, Any], beat: BeatInfo) -> tuple[str, dict[str, Any]]:
    """An OpenSearch ISM policy for the daily indices: delete them after ``delete_after`` (30d)."""
    scfg = section(setup, "ism")
    name = str(scfg.get("policy_name") or beat.beat)
    if scfg.get("policy_file"):
        with open(str(scfg["policy_file"]), encoding="utf-8") as fh:
            policy: dict[str, Any] = json.load(fh)
        return name, policy
    after = str(scfg.get("delete_after") or "30d")
    return name, {
        "policy": {
            "description": f"{beat.beat}: delete daily indices after {after}",
            "default_state": "hot",
            "states": [
                {"name": "hot", "actions": [], "transitions": [{"state_name": "delete", "conditions": {"min_index_age": after}}]},
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [f"{beat.beat}-*"], "priority": 100}],
        }
    }
