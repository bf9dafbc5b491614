#!/usr/bin/env python3
"""The names of cap13_lookalike.sh: lookalikes of the protected domains example.test and
corp.test, legitimate IDN names and ordinary names, as punycode (what goes on the wire).

    lookalike_names.py zones      # one registered domain per line (BIND zones to create)
    lookalike_names.py queries    # dig -f lines: every domain asked several times

tests/detection/test_detection_pcaps.py keeps the expected verdicts in step with LOOKALIKES.
"""

from __future__ import annotations

import sys

#: lookalike -> how it imitates (decoded form for reading; the wire carries punycode)
LOOKALIKES = {
    "examp1e.test": "digit for letter (1/l)",
    "exarnple.test": "rn for m",
    "examp1e-login.test": "digit swap plus hyphenated addition",
    "\u0435xample.test": "Cyrillic e (U+0435)",
    "ex\u0430mple.test": "Cyrillic a (U+0430)",
    "c\u03bfrp.test": "Greek omicron (U+03BF)",
    "\u0441\u043erp.test": "Cyrillic c and o",
    "exampel.test": "transposed letters (one edit)",
    "exmple.test": "missing letter (one edit)",
    "examplle.test": "doubled letter (one edit)",
    "ex\u00e4mple.test": "a with diaeresis",
    "example-login.test": "hyphenated addition",
    "secure-example.test": "hyphenated addition",
    "corp-vpn.test": "hyphenated addition",
    "c0rp.test": "digit for letter (0/o)",
}
#: legitimate names that must not alert: IDN names of their own, the protected domains and
#: their subdomains, ordinary names
LEGITIMATE = [
    "m\u00fcnchen.test", "b\u00fccher.test", "\u043f\u0440\u0438\u043c\u0435\u0440.test",
    "\u03b5\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac.test", "\u4f8b\u5b50.test", "stra\u00dfe.test",
    "caf\u00e9.test", "\u0645\u062b\u0627\u0644.test",
    "example.test", "corp.test", "www.example.test", "mail.corp.test", "b\u00fccher.example.test",
    "samples.test", "examine.test", "corporate.test", "cop.test", "crop.test", "temple.test",
]


def wire(name: str) -> str:
    return ".".join(label.encode("idna").decode() if not label.isascii() else label for label in name.split("."))


def registered(name: str) -> str:
    return ".".join(name.split(".")[-2:])


def main(what: str) -> None:
    names = list(LOOKALIKES) + LEGITIMATE
    if what == "zones":
        for z in sorted({registered(wire(n)) for n in names}):
            print(z)
    else:
        for n in names:
            w = wire(n)
            for q in (f"{w} A", f"www.{w} A", f"{w} MX", f"{w} A"):
                print(q)


if __name__ == "__main__":
    main(sys.argv[1])
