"""The public suffix list as pybeat uses it: an index of its rules, and a name's registered domain.

Owns reading the list's text (the ``public_suffix_list.dat`` that the ``publicsuffixlist``
package ships: ``publicsuffixlist.PSLFILE``, its public constant) into a set of rules, and the
lookup, with the package's semantics (its ``privatesuffix`` with unknown TLDs public: the
default rule ``*``; a wildcard's root is public too, as the list's own test data and linter
require). Nothing of the package but that file is used, so an upgrade that changes its
internals cannot change pybeat's answers silently; tests/dns/test_suffixes.py checks the answers
against the package's own on every rule of the list.

Names come in lower case (the caller's job). Non-ASCII rules are matched both as written and
IDNA-encoded (``xn--``), as the package does; they are encoded when the first name with a
non-ASCII or ``xn--`` label is looked up (the ``idna`` codec is slow, and most traffic is
plain ASCII, which no encoded rule can match).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SuffixIndex", "list_path"]


def list_path() -> Path:
    """The list file shipped with the ``publicsuffixlist`` package."""
    from publicsuffixlist import PSLFILE

    return Path(PSLFILE)


def _parse(text: str) -> set[str]:
    """The rules of the list (ICANN and private sections): the first word of each line, lower
    case, without comments and blank lines."""
    rules = {line.lower().split(" ")[0].rstrip() for line in text.splitlines() if line and line[:2] != "//"}
    rules.discard("")
    return rules


class SuffixIndex:
    """The rules of a public suffix list, looked up by :meth:`private_suffix`."""

    def __init__(self, text: str | None = None) -> None:
        if text is None:
            text = list_path().read_text(encoding="utf-8")
        rules = _parse(text)
        #: every rule as written (``*.`` wildcards, ``!`` exceptions); plus their encoded forms
        #: once an IDN name was seen
        self.rules: set[str] = rules
        self.max_labels = max((rule.count(".") + 1 for rule in rules), default=1)
        self._idn = [rule for rule in rules if not rule.isascii()]
        self._encoded = not self._idn

    def _encode_idn_rules(self) -> None:
        for rule in self._idn:
            try:
                enc = rule.lstrip("!").encode("idna").decode("ascii")
            except UnicodeError:
                continue
            self.rules.add("!" + enc if rule[0] == "!" else enc)
        self._encoded = True

    def public_labels(self, labels: list[str]) -> int:
        """How many of the (lower-case, non-empty) labels at the end are the public suffix."""
        ll = len(labels)
        if ll == 1:
            return 1
        if not self._encoded and any(not label.isascii() or "xn--" in label for label in labels):
            self._encode_idn_rules()
        rules = self.rules
        # longest first; wildcard > exception > exact, as the package checks them
        for i in range(max(0, ll - (self.max_labels + 1)), ll):
            depth = ll - i
            s = ".".join(labels[i:])
            if "!" + s in rules:
                return depth - 1  # an exception: its wildcard sibling's implicit root
            if "*." + s in rules:
                return depth + 1 if i > 0 else depth  # the whole name: the wildcard's root
            if s in rules:
                return depth
        return 1  # the default rule "*"

    def private_suffix(self, name: str) -> str | None:
        """The registered domain (public suffix plus one label) of a lower-case name, or None
        when the name is itself public or malformed (an empty label)."""
        if name.endswith("."):
            name = name[:-1]
        labels = name.split(".")
        if "" in labels:
            return None
        public = self.public_labels(labels)
        if len(labels) < public + 1:
            return None
        return ".".join(labels[-(public + 1):])

    def parents(self) -> frozenset[str]:
        """The names a rule can hang off: every rule without its first label (``*.ck`` and
        ``!www.ck`` give ``ck``, ``co.uk`` gives ``uk``), and the parent of every wildcard's
        root, since the root is public too (``*.ab.crm.dev``: ``crm.dev``; an exception
        stands beside a wildcard: its parent's parent as well). Encoded IDN rules are not
        needed here: DomainParts takes no shortcut for such names."""
        nodes = set()
        for rule in self.rules:
            bare = rule.lstrip("!")
            rest = bare.partition(".")[2]
            nodes.add(rest)
            if bare.startswith("*.") or rule.startswith("!"):
                nodes.add(rest.partition(".")[2])
        return frozenset(nodes)
