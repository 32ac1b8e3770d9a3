"""ACL policies: a parser for the HCL (and JSON) subset Vault policies use, and the path matching
rules that decide which rule applies to a request path.

Matching follows Vault's documented rules: an exact rule wins; otherwise, among the glob (``*`` at
the end) and segment-wildcard (``+``) rules that match, the highest priority one applies, where a
rule is *lower* priority when (1) its first wildcard comes earlier, (2) it ends in ``*`` and the
other does not, (3) it has more ``+`` segments, (4) it is shorter, (5) it sorts lower. Rules for
the same path string in several policies are merged (union of capabilities; ``deny`` wins).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .errors import bad_request

CAPABILITIES = ("create", "read", "update", "patch", "delete", "list", "sudo", "deny",
                "subscribe", "recover")

# The legacy `policy = "..."` shorthand, as Vault expands it.
_LEGACY = {
    "deny": ["deny"],
    "read": ["read", "list"],
    "write": ["create", "read", "update", "delete", "list"],
    "sudo": ["create", "read", "update", "delete", "list", "sudo"],
}

DEFAULT_POLICY = """\
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to renew a lease via lease_id in the request body
path "sys/leases/renew" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# Allow a token to use the cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}
"""


@dataclass
class Rule:
    path: str
    capabilities: set[str]


@dataclass
class Policy:
    name: str
    text: str
    rules: list[Rule] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Parsing


class _ParseError(Exception):
    pass


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-.]*)
  | (?P<punct>[{}\[\]=,:])
""", re.VERBOSE | re.DOTALL)


def _tokenize(text: str) -> list[tuple[str, object, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise _ParseError(f"At {line}: illegal char {text[pos]!r}")
        kind = m.lastgroup
        if kind == "string":
            tokens.append(("string", json.loads(m.group()), pos))
        elif kind == "number":
            tokens.append(("number", m.group(), pos))
        elif kind == "ident":
            word = m.group()
            if word in ("true", "false"):
                tokens.append(("bool", word == "true", pos))
            else:
                tokens.append(("ident", word, pos))
        elif kind == "punct":
            tokens.append((m.group(), m.group(), pos))
        pos = m.end()
    tokens.append(("eof", None, pos))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i][0]

    def take(self, kind: str | None = None):
        tok = self.tokens[self.i]
        if kind is not None and tok[0] != kind:
            raise _ParseError(f"expected {kind}, got {tok[0]} at offset {tok[2]}")
        self.i += 1
        return tok

    def body(self, end: str) -> list[tuple[str, object]]:
        """Items until `end`: (key, value) for attributes, (key, (label, items)) for blocks."""
        items = []
        while self.peek() != end:
            key_tok = self.take()
            if key_tok[0] not in ("ident", "string"):
                raise _ParseError(f"unexpected {key_tok[0]} at offset {key_tok[2]}")
            key = key_tok[1]
            if self.peek() in ("=", ":"):
                self.take()
                items.append((key, self.value()))
            else:
                labels = []
                while self.peek() == "string":
                    labels.append(self.take()[1])
                self.take("{")
                inner = self.body("}")
                self.take("}")
                items.append((key, (labels, inner)))
            if self.peek() == ",":
                self.take()
        return items

    def value(self):
        kind = self.peek()
        if kind in ("string", "number", "bool"):
            return self.take()[1]
        if kind == "[":
            self.take()
            out = []
            while self.peek() != "]":
                out.append(self.value())
                if self.peek() == ",":
                    self.take()
                elif self.peek() != "]":
                    raise _ParseError(f"expected , or ] at offset {self.tokens[self.i][2]}")
            self.take("]")
            return out
        if kind == "{":
            self.take()
            inner = self.body("}")
            self.take("}")
            return dict((k, v) for k, v in inner)
        raise _ParseError(f"unexpected {kind} at offset {self.tokens[self.i][2]}")


def _rule_from_attrs(path: str, attrs: dict) -> Rule:
    caps: set[str] = set()
    if "capabilities" in attrs:
        raw = attrs["capabilities"]
        if not isinstance(raw, list):
            raise _ParseError(f'path "{path}": capabilities must be a list')
        for cap in raw:
            cap = str(cap).lower()
            if cap not in CAPABILITIES:
                raise _ParseError(f'path "{path}": invalid capability "{cap}"')
            caps.add(cap)
    if "policy" in attrs:
        legacy = str(attrs["policy"]).lower()
        if legacy not in _LEGACY:
            raise _ParseError(f'path "{path}": invalid policy "{legacy}"')
        caps.update(_LEGACY[legacy])
    if "deny" in caps:
        caps = {"deny"}
    return Rule(path=path.lstrip("/"), capabilities=caps)


def _validate_path(path: str) -> None:
    if "*" in path[:-1]:
        raise _ParseError(f'path "{path}": invalid use of wildcards ("*" is only allowed at the end)')


def parse_policy(name: str, text: str) -> Policy:
    """Parse HCL or JSON policy text; raise a 400 with Vault's prefix on malformed input."""
    try:
        rules: list[Rule] = []
        stripped = text.lstrip()
        if stripped.startswith("{"):
            doc = json.loads(text)
            paths = doc.get("path", {}) if isinstance(doc, dict) else {}
            entries = paths if isinstance(paths, list) else [paths]
            for entry in entries:
                if not isinstance(entry, dict):
                    raise _ParseError("path entries must be objects")
                for path, attrs in entry.items():
                    _validate_path(path)
                    rules.append(_rule_from_attrs(path, attrs if isinstance(attrs, dict) else {}))
        else:
            parser = _Parser(text)
            items = parser.body("eof")
            for key, value in items:
                if key != "path":
                    continue  # name = "...", other top-level keys carry no rules here
                if not isinstance(value, tuple) or len(value[0]) != 1:
                    raise _ParseError('a "path" block needs exactly one label')
                path = value[0][0]
                _validate_path(path)
                attrs = {k: v for k, v in value[1]}
                rules.append(_rule_from_attrs(path, attrs))
    except (_ParseError, json.JSONDecodeError, ValueError) as exc:
        raise bad_request(f"failed to parse policy: {exc}")
    return Policy(name=name, text=text, rules=rules)


# ---------------------------------------------------------------------------------------------
# Matching


def _is_exact(path: str) -> bool:
    return not path.endswith("*") and "+" not in path.split("/")


def _matches(rule: str, path: str) -> bool:
    glob = rule.endswith("*")
    pattern = rule[:-1] if glob else rule
    segments = pattern.split("/")
    if "+" not in segments:
        return path.startswith(pattern) if glob else path == pattern
    parts = path.split("/")
    if len(parts) < len(segments) or (not glob and len(parts) != len(segments)):
        return False
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "+":
            continue
        if i == last and glob:
            if not parts[i].startswith(seg):
                return False
        elif parts[i] != seg:
            return False
    return True


def _priority(rule: str) -> tuple:
    """Sort key: a larger key is a higher-priority (more specific) rule."""
    positions = [p for p in (rule.find("+"), rule.find("*")) if p >= 0]
    first_wildcard = min(positions) if positions else len(rule)
    plus_count = rule.split("/").count("+")
    return (first_wildcard, not rule.endswith("*"), -plus_count, len(rule), rule)


class ACL:
    """The merged rules of a token's policies."""

    def __init__(self, policies: list[Policy], root: bool = False):
        self.root = root
        merged: dict[str, set[str]] = {}
        for policy in policies:
            for rule in policy.rules:
                caps = merged.setdefault(rule.path, set())
                caps.update(rule.capabilities)
        for path, caps in merged.items():
            if "deny" in caps:
                merged[path] = {"deny"}
        self.rules = merged

    def capabilities(self, path: str) -> set[str]:
        """The capabilities granted on `path` (empty when no rule matches)."""
        if self.root:
            return {"root"}
        if path in self.rules and _is_exact(path):
            return set(self.rules[path])
        best = None
        for rule in self.rules:
            if _is_exact(rule) or not _matches(rule, path):
                continue
            if best is None or _priority(rule) > _priority(best):
                best = rule
        return set(self.rules[best]) if best is not None else set()

    def allows(self, path: str, capability: str, sudo: bool = False) -> bool:
        if self.root:
            return True
        caps = self.capabilities(path)
        if "deny" in caps:
            return False
        if sudo and "sudo" not in caps:
            return False
        return capability in caps


def capability_list(acl: ACL, path: str) -> list[str]:
    """What sys/capabilities-self reports for a path."""
    caps = acl.capabilities(path)
    if not caps or "deny" in caps:
        return ["deny"]
    return sorted(caps)
