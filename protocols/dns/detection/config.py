"""``pybeat.detection.dns`` (``packetbeat.detection.dns`` too): one model per detector, each
with its own ``enabled``, thresholds, window and allowlist, all with defaults, so that

    pybeat.detection.dns:
      enabled: true
      protected_domains: [example.test, corp.test]

runs every detector. ``docs/detection.md`` explains each key.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from pybeat.api import Duration, PluginConfig

__all__ = [
    "DnsDetectionConfig", "LookalikeConfig", "NewDomainConfig", "PoisoningConfig", "RateAnomalyConfig",
    "TunnelConfig", "DEFAULT_TUNNEL_ALLOWLIST",
]

#: Known heavy users of DNS whose names look like data: DNS blocklists, hash-lookup clouds of
#: anti-virus and reputation services, CDNs and cloud front doors, reverse zones, multicast
#: DNS. A name matches an entry when it is the entry or ends with "." + entry.
DEFAULT_TUNNEL_ALLOWLIST: tuple[str, ...] = (
    # reverse lookups and local names
    "in-addr.arpa", "ip6.arpa", "local",
    # DNS blocklists and allowlists (IP and domain reputation)
    "spamhaus.org", "spamhaus.net", "dnsbl.sorbs.net", "spamcop.net", "barracudacentral.org",
    "abuseat.org", "uribl.com", "surbl.org", "dnswl.org", "mailspike.net", "senderscore.com",
    "spameatingmonkey.net", "psbl.surriel.com", "dnsbl.info", "junkemailfilter.com", "s5h.net",
    "abuse.ch", "senderbase.org", "rbl.jp", "nordspam.com", "invaluement.com",
    # hash and URL reputation lookups of anti-virus and security vendors
    "hash.cymru.com", "cymru.com", "sophosxl.net", "mcafee.com", "trendmicro.com", "e5.sk", "eset.com",
    "bitdefender.net", "kaspersky-labs.com", "fsapi.com", "f-secure.com", "avast.com", "avg.com",
    "norton.com", "symantec.com", "webroot.com", "spamassassin.org", "razor.cloudmark.com",
    "cloudmark.com", "threatstop.com", "malwarebytes.com", "crowdstrike.com",
    # CDNs and cloud front doors (hashed per-customer edge names)
    "akamaiedge.net", "akamai.net", "akamaized.net", "akamaihd.net", "edgekey.net", "edgesuite.net",
    "cloudfront.net", "fastly.net", "fastlylb.net", "azureedge.net", "azurefd.net", "trafficmanager.net",
    "googlevideo.com", "gvt1.com", "1e100.net", "googleusercontent.com", "amazonaws.com", "cdn77.org",
    "cloudflare.net", "llnwd.net", "edgecastcdn.net", "footprint.net", "msedge.net",
)


#: the longest window a detector takes (packet time, seconds): 30 days
_MAX_WINDOW = 30 * 86_400
#: the largest table cap: a billion entries (far past any memory; keeps the numbers machine-sized)
_MAX_CAP = 1_000_000_000


class TunnelConfig(PluginConfig):
    """dns_tunnel: tunnelling and exfiltration, per client and registered domain."""

    enabled: bool = True
    window: Duration = Field(default=60.0, gt=0, le=_MAX_WINDOW)
    #: distinct subdomains of one registered domain asked by one client within the window
    min_distinct_subdomains: int = Field(default=20, ge=1)
    #: characters of distinct subdomains sent up (the data a tunnel carries upstream)
    min_bytes_up: int = Field(default=1000, ge=0)
    #: a channel down: bytes of record data in TXT, NULL, CNAME, MX, KEY, ... answers (not
    #: A/AAAA), most of it encoded-looking (min_encoded_ratio of the answers carrying data)
    min_bytes_down: int = Field(default=2000, ge=0)
    #: share of the answers carrying record data whose data looks encoded (lazy-mode polls
    #: and acknowledgements carry little)
    min_encoded_answer_ratio: float = Field(default=0.25, ge=0, le=1)
    #: a channel up in packed names: min_encoded_ratio of the names have a label this long
    #: (tunnels fill labels to the 63-character limit; hashes are 32-40 characters a label)
    packed_label_length: int = Field(default=56, ge=1, le=63)
    #: mean length of the distinct subdomains
    min_mean_length: float = Field(default=20.0, ge=0)
    #: share of distinct subdomains whose longest label looks encoded (hex, base32/64, binary)
    min_encoded_ratio: float = Field(default=0.5, ge=0, le=1)
    #: or a channel up in a stream of chunks: this many different subdomain lengths (hash
    #: lookups have one to three, a stream of data chunks has many)
    min_distinct_lengths: int = Field(default=6, ge=1)
    allowlist: list[str] = Field(default_factory=lambda: list(DEFAULT_TUNNEL_ALLOWLIST))
    #: added to the shipped allowlist (``allowlist`` replaces it)
    extra_allowlist: list[str] = []
    #: (client, registered domain) pairs tracked at once; the oldest is evicted and counted
    max_tracked: int = Field(default=20_000, ge=1, le=_MAX_CAP)
    #: distinct subdomains remembered per pair and window (more are counted as new)
    max_names_per_domain: int = Field(default=4_096, ge=16, le=_MAX_CAP)


class PoisoningConfig(PluginConfig):
    """dns_poisoning: forged responses racing a real one."""

    enabled: bool = True
    window: Duration = Field(default=10.0, gt=0, le=_MAX_WINDOW)
    #: responses with an id that matches no recent query of that client and port, within the
    #: window, that make a race
    min_forged_responses: int = Field(default=5, ge=1)
    #: how long queries are remembered, so a late or repeated genuine answer is recognised
    query_memory: Duration = Field(default=60.0, gt=0, le=_MAX_WINDOW)
    #: (client, port, id) remembered at once (as many as the DNS protocol's pending queries);
    #: the least recently used are evicted and counted
    max_tracked: int = Field(default=100_000, ge=1, le=_MAX_CAP)
    #: clients whose responses are not judged (e.g. a monitored resolver you trust)
    allowlist: list[str] = []


class LookalikeConfig(PluginConfig):
    """dns_lookalike: registered domains that imitate a protected domain."""

    enabled: bool = True
    #: one edit (insert, delete, replace, swap) is judged only for protected names at least
    #: this long (shorter names have too many honest neighbours: corp / crop / coop)
    min_length_for_edits: int = Field(default=5, ge=1)
    #: registered domains never reported
    allowlist: list[str] = []
    #: distinct registered domains remembered (judged once each); cleared when full, counted
    max_tracked: int = Field(default=200_000, ge=1, le=_MAX_CAP)


class RateAnomalyConfig(PluginConfig):
    """dns_rate_anomaly: a client querying far above its own baseline."""

    enabled: bool = True
    #: length of one counting bucket
    window: Duration = Field(default=60.0, gt=0, le=_MAX_WINDOW)
    #: buckets of history a client needs before it is judged
    min_history: int = Field(default=10, ge=1)
    #: how far above the baseline (moving average of past buckets) a bucket must be
    factor: float = Field(default=10.0, gt=1)
    #: and at least this many queries in the bucket
    min_queries: int = Field(default=600, ge=1)
    allowlist: list[str] = []
    max_tracked: int = Field(default=100_000, ge=1, le=_MAX_CAP)


class NewDomainConfig(PluginConfig):
    """dns_new_domain: registered domains never seen before by this agent."""

    enabled: bool = True
    #: packet time spent learning (no alerts) from the first event this agent ever saw
    learning_period: Duration = Field(default=86_400.0, ge=0)
    #: alerts at most per window (a burst of new domains is one count, not a flood of alerts)
    window: Duration = Field(default=60.0, gt=0, le=_MAX_WINDOW)
    max_alerts_per_window: int = Field(default=20, ge=0)
    allowlist: list[str] = []
    #: registered domains remembered (and persisted); the least recently seen is evicted
    max_tracked: int = Field(default=500_000, ge=1, le=_MAX_CAP)


class DnsDetectionConfig(PluginConfig):
    enabled: bool = True
    #: lookalikes of these registered domains are flagged
    protected_domains: list[str] = []
    tunnel: TunnelConfig = TunnelConfig()
    poisoning: PoisoningConfig = PoisoningConfig()
    lookalike: LookalikeConfig = LookalikeConfig()
    rate_anomaly: RateAnomalyConfig = RateAnomalyConfig()
    new_domain: NewDomainConfig = NewDomainConfig()

    @field_validator("protected_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for d in value:
            d = d.strip().strip(".").lower()
            labels = d.split(".")
            # (an address is not a domain: its last label is all digits, as no top-level domain is)
            if len(labels) < 2 or not all(_is_label(label) for label in labels) or labels[-1].isdigit():
                raise ValueError(f"{d!r} is not a registered domain such as example.com "
                                 "(letters, digits and hyphens between dots; no scheme, path, port or wildcard)")
            out.append(d)
        return out


def _is_label(label: str) -> bool:
    """A DNS label as people write domains: 1 to 63 letters (any script: an IDN name is written
    in its own letters or as xn--), digits and inner hyphens."""
    return (0 < len(label) <= 63 and not label.startswith("-") and not label.endswith("-")
            and all(c in _LDH or (not c.isascii() and c.isalpha()) for c in label))


_LDH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
