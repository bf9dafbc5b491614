"""The alert event every detector emits (ECS): ``event.kind: alert``, the rule, the MITRE
ATT&CK technique, who and what is involved, the evidence as numbers under ``dns_detection``,
and a one-line ``message``. ``@timestamp`` is the packet time at which the rule fired."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from pybeat.api import Event, format_ts

__all__ = ["RULES", "Rule", "alert"]


class Rule(NamedTuple):
    name: str
    description: str
    technique_id: tuple[str, ...]
    technique_name: tuple[str, ...]
    tactic_id: tuple[str, ...]
    tactic_name: tuple[str, ...]
    severity: int  # event.severity (ECS: a number; 21 low, 47 medium, 73 high, 99 critical)


RULES = {
    r.name: r for r in (
        Rule("dns_tunnel",
             "Data carried through DNS names and records: many distinct encoded-looking subdomains of one "
             "domain with data going up and coming down (a DNS tunnel or exfiltration channel)",
             ("T1071.004", "T1048"),
             ("Application Layer Protocol: DNS", "Exfiltration Over Alternative Protocol"),
             ("TA0011", "TA0010"), ("Command and Control", "Exfiltration"), 73),
        Rule("dns_poisoning",
             "Forged DNS responses racing a genuine one: a burst of responses whose id matches no query of the "
             "client's port, or two different answers to one query (cache poisoning)",
             ("T1557",), ("Adversary-in-the-Middle",), ("TA0006", "TA0009"), ("Credential Access", "Collection"), 73),
        Rule("dns_lookalike",
             "A lookup of a registered domain that imitates a protected domain (confusable characters, "
             "digit/letter swaps, one edit away, or a hyphenated addition)",
             ("T1583.001", "T1566"), ("Acquire Infrastructure: Domains", "Phishing"),
             ("TA0042", "TA0001"), ("Resource Development", "Initial Access"), 47),
        Rule("dns_rate_anomaly",
             "A client querying far above its own baseline rate",
             ("T1071.004", "T1498"), ("Application Layer Protocol: DNS", "Network Denial of Service"),
             ("TA0011", "TA0040"), ("Command and Control", "Impact"), 47),
        Rule("dns_new_domain",
             "A registered domain this agent has never seen before (after its learning period)",
             ("T1583.001", "T1568"), ("Acquire Infrastructure: Domains", "Dynamic Resolution"),
             ("TA0042", "TA0011"), ("Resource Development", "Command and Control"), 21),
    )
}


def finding_id(rule: str, *key: object) -> str:
    """A stable id of a finding (the same in every refresh of it): ``event.id``."""
    return hashlib.sha1("|".join([rule, *map(str, key)]).encode()).hexdigest()[:20]


def alert(
    rule_name: str,
    ts: int,
    message: str,
    *,
    key: tuple[object, ...],
    evidence: dict[str, Any],
    client_ip: str | None = None,
    name: str | None = None,
    registered_domain: str | None = None,
    start_ns: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    rule = RULES[rule_name]
    event: dict[str, Any] = {
        "kind": "alert", "category": ["network", "intrusion_detection"], "type": ["info"],
        "dataset": "pybeat.detection", "id": finding_id(rule_name, *key), "severity": rule.severity,
        "end": format_ts(ts),
    }
    if start_ns is not None:
        event["start"] = format_ts(start_ns)
    fields: dict[str, Any] = {
        "event": event,
        "rule": {"name": rule.name, "description": rule.description, "category": "DNS", "ruleset": "pybeat"},
        "threat": {
            "framework": "MITRE ATT&CK",
            "technique": {"id": list(rule.technique_id), "name": list(rule.technique_name)},
            "tactic": {"id": list(rule.tactic_id), "name": list(rule.tactic_name)},
        },
        "network": {"protocol": "dns"},
        "message": message,
        "dns_detection": evidence,
    }
    if client_ip:
        fields["client"] = {"ip": client_ip}
        fields["related"] = {"ip": [client_ip]}
    if name is not None or registered_domain is not None:
        question: dict[str, Any] = {}
        if name is not None:
            question["name"] = name
        if registered_domain is not None:
            question["registered_domain"] = registered_domain
        fields["dns"] = {"question": question}
    if extra:
        for k, v in extra.items():
            node = fields.setdefault(k, {})
            if isinstance(node, dict) and isinstance(v, dict):
                node.update(v)
            else:
                fields[k] = v
    # digest: what the exit summary counts of it (type "alert", the rule as its value)
    return Event(ts, fields, digest=("alert", None, rule.name, None))
