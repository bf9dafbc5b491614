#!/usr/bin/env python3
"""Zones and query lists for cap11_benign.sh: the traffic that fools naive tunnel detectors.

    benign_zones.py OUTDIR

writes OUTDIR/named.conf, OUTDIR/zones/*.zone and OUTDIR/queries/*.txt (dig -f batch files).
Every zone is served by one BIND in a namespace; the names imitate the real services they
stand for (DNS blocklists, hash-lookup clouds of anti-virus vendors, CDNs, reverse zones, DKIM
keys), once under the real services' names (which the shipped allowlist knows) and once under
names of our own (which it does not: the detector must tell them apart by behaviour).
Deterministic (seeded), so a re-run writes the same zones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import sys

R = random.Random(1717)
SOA = "@ 3600 IN SOA ns1.{z}. hostmaster.{z}. 1 3600 600 86400 60\n@ 3600 IN NS ns1.{z}.\nns1 3600 IN A 10.99.11.1\n"
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def zone(out: str, name: str, body: str, zones: list[str]) -> None:
    zones.append(name)
    with open(os.path.join(out, "zones", name + ".zone"), "w") as fh:
        fh.write("$TTL 300\n$ORIGIN " + name + ".\n" + SOA.format(z=name) + body)


def txt(value: str) -> str:
    return " ".join('"' + value[i:i + 255] + '"' for i in range(0, len(value), 255))


def ip() -> str:
    return ".".join(str(R.randrange(1, 255)) for _ in range(4))


def main(out: str) -> None:
    os.makedirs(os.path.join(out, "zones"), exist_ok=True)
    os.makedirs(os.path.join(out, "queries"), exist_ok=True)
    zones: list[str] = []
    q: dict[str, list[str]] = {}

    # DNS blocklists: a mail server checks each connecting address (reversed octets); one in
    # ten is listed (A 127.0.0.x plus a TXT reason), the rest are NXDOMAIN.
    for bl in ("zen.spamhaus.org", "dnsbl.mailfilter.test"):
        body, lines = "", []
        for _ in range(400):
            rev = ".".join(reversed(ip().split(".")))
            if R.random() < 0.1:
                body += f"{rev} IN A 127.0.0.{R.choice([2, 3, 4, 10, 11])}\n"
                body += f"{rev} IN TXT {txt('Listed by ' + bl + ', see https://check.' + bl + '/query/ip/' + rev)}\n"
                lines += [f"{rev}.{bl} A", f"{rev}.{bl} TXT"]
            else:
                lines.append(f"{rev}.{bl} A")
        zone(out, bl, body, zones)
        q["dnsbl_" + bl.split(".")[1]] = lines

    # Hash lookups of anti-virus and reputation clouds: MD5/SHA-1 hex in one label (Team
    # Cymru's malware hash registry: TXT "<last seen> <detection %>"), SHA-256 as two labels of
    # 32, and base32 hashes answered by an encoded A record (as McAfee GTI does).
    for cloud in ("hash.cymru.com", "hashes.avcloud.test"):
        body, lines = "", []
        for i in range(300):
            data = R.randbytes(16)
            h = hashlib.md5(data).hexdigest() if i % 3 == 0 else hashlib.sha1(data).hexdigest() if i % 3 == 1 \
                else hashlib.sha256(data).hexdigest()
            name = h if len(h) < 64 else h[:32] + "." + h[32:]
            if R.random() < 0.2:
                body += f"{name} IN TXT \"{1700000000 + R.randrange(10**7)} {R.randrange(5, 90)}\"\n"
            lines.append(f"{name}.{cloud} TXT")
        zone(out, cloud, body, zones)
        q["avhash_" + cloud.split(".")[1]] = lines
    body, lines = "", []
    for _ in range(300):
        label = "".join(R.choice(B32) for _ in range(26))
        body += f"{label}.0.1 IN A 127.{R.randrange(0, 255)}.{R.randrange(0, 255)}.{R.randrange(0, 255)}\n"
        lines.append(f"{label}.0.1.gti.avquery.test A")
    zone(out, "gti.avquery.test", body, zones)
    q["avhash_gti"] = lines

    # CDNs: sites CNAMEd to per-customer hashed edge names, as Akamai/CloudFront/Fastly do.
    for cdn in ("akamaiedge.net", "edge-cdn.test"):
        body, lines, site_body = "", [], ""
        for i in range(150):
            edge = "".join(R.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(14))
            host = f"e{R.randrange(1000, 99999)}.{edge}.a"
            body += f"{host} IN A 198.51.100.{R.randrange(1, 255)}\n{host} IN A 198.51.100.{R.randrange(1, 255)}\n"
            site_body += f"www{i} IN CNAME {host}.{cdn}.\n"
            lines += [f"www{i}.shop-sites.test A", f"{host}.{cdn} A"]
        zone(out, cdn, body, zones)
        q["cdn_" + cdn.split(".")[0]] = lines
    # the sites' own zone CNAMEs into both CDNs
    zone(out, "shop-sites.test", "".join(f"www{i} IN CNAME www{i}.x.edge-cdn.test.\n" for i in range(150))
         .replace(".x.edge-cdn.test.", ".x.edge-cdn.test."), zones)
    body = "".join(f"www{i}.x IN CNAME e{i}.a.edge-cdn.test.\ne{i}.a IN A 198.51.100.{i % 250 + 1}\n" for i in range(150))
    with open(os.path.join(out, "zones", "edge-cdn.test.zone"), "a") as fh:
        fh.write(body)

    # Reverse-lookup sweeps: a scanner or a log server resolving a whole /23 and 256 IPv6
    # addresses (ip6.arpa nibble names: 32 one-character labels).
    body4, lines = "", []
    for a in range(0, 2):
        for b in range(256):
            if R.random() < 0.5:
                body4 += f"{b}.{a} IN PTR host-{a}-{b}.lan.test.\n"
            lines.append(f"{b}.{a}.99.10.in-addr.arpa PTR")
    zone(out, "99.10.in-addr.arpa", body4, zones)
    body6 = ""
    for i in range(256):
        nib = f"{R.getrandbits(64):016x}"
        rev = ".".join(reversed(nib))
        if R.random() < 0.5:
            body6 += f"{rev} IN PTR v6host{i}.lan.test.\n"
        lines.append(f"{rev}.0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa PTR")
    zone(out, "0.0.0.0.9.9.0.0.0.0.d.f.ip6.arpa", body6, zones)
    q["reverse_sweep"] = lines

    # DKIM keys and other long TXT answers: a mail server verifying 120 senders' signatures
    # (2048-bit RSA keys, about 400 characters of base64 each), SPF and site-verification TXT.
    body, lines = "", []
    for i in range(120):
        key = base64.b64encode(b"\x30\x82\x01\x22" + R.randbytes(290)).decode()
        dom = f"sender{i}"
        body += f"sel{i % 3}._domainkey.{dom} IN TXT {txt('v=DKIM1; k=rsa; p=' + key)}\n"
        body += f"{dom} IN TXT {txt('v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 include:_spf.mailhost.test ~all')}\n"
        body += f"{dom} IN TXT {txt('site-verification=' + base64.urlsafe_b64encode(R.randbytes(32)).decode())}\n"
        lines += [f"sel{i % 3}._domainkey.{dom}.mail-senders.test TXT", f"{dom}.mail-senders.test TXT"]
    zone(out, "mail-senders.test", body, zones)
    q["dkim"] = lines

    with open(os.path.join(out, "named.conf"), "w") as fh:
        fh.write(f'options {{ directory "{out}"; listen-on {{ 10.99.11.1; 127.0.0.1; }}; listen-on-v6 {{ none; }};\n'
                 '  recursion no; allow-query { any; }; dnssec-validation no; pid-file "named.pid"; };\n')
        for z in zones:
            fh.write(f'zone "{z}" {{ type primary; file "zones/{z}.zone"; }};\n')
    for name, lines in q.items():
        with open(os.path.join(out, "queries", name + ".txt"), "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
