"""Fault injection and request statistics, driven through the /_sim/ endpoints.

A fault rule applies to requests whose Vault path (after /v1/, with the namespace prefix when an
X-Vault-Namespace header is sent) contains any of its ``paths`` substrings, or to every request
when ``paths`` is empty. A rule may add latency, answer an error status, drop the connection, or answer like a standby
node without request forwarding (``redirect``: 307 with ``Location: <redirect>/v1/<path>``),
for its next ``count`` matching requests (forever when ``count`` is absent).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional

# Bodies Vault sends for the statuses a rule can force.
RATE_LIMITED = 'request path "{path}": rate limit quota exceeded'


@dataclass
class FaultRule:
    paths: list[str] = field(default_factory=list)
    latency_ms: int = 0
    status: int = 0
    drop: bool = False
    remaining: Optional[int] = None     # None: unlimited
    redirect: str = ""                  # base URL of the "active node" for a 307

    def matches(self, path: str) -> bool:
        return not self.paths or any(p in path for p in self.paths)

    def describe(self) -> dict:
        return {"paths": self.paths, "latency_ms": self.latency_ms, "status": self.status,
                "drop": self.drop, "count": self.remaining, "redirect": self.redirect}


@dataclass
class FaultDecision:
    latency_s: float = 0.0
    status: int = 0
    drop: bool = False
    redirect: str = ""


class FaultConfigError(ValueError):
    pass


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def configure(self, doc: dict) -> None:
        """Apply a POST /_sim/faults body: {"clear": true} and/or one new rule."""
        if not isinstance(doc, dict):
            raise FaultConfigError("body must be a JSON object")
        known = {"clear", "paths", "latency_ms", "status", "count", "drop", "redirect"}
        unknown = set(doc) - known
        if unknown:
            raise FaultConfigError(f"unknown fields: {sorted(unknown)}")
        rule = None
        if set(doc) - {"clear"}:
            paths = doc.get("paths") or []
            if isinstance(paths, str):
                paths = [paths]
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise FaultConfigError("paths must be a list of strings")
            latency = doc.get("latency_ms", 0)
            status = doc.get("status", 0)
            count = doc.get("count")
            drop = doc.get("drop", False)
            if not isinstance(latency, (int, float)) or latency < 0:
                raise FaultConfigError("latency_ms must be a non-negative number")
            if not isinstance(status, int) or (status and not 400 <= status <= 599):
                raise FaultConfigError("status must be an HTTP error status (400-599)")
            if count is not None and (not isinstance(count, int) or count <= 0):
                raise FaultConfigError("count must be a positive integer")
            if not isinstance(drop, bool):
                raise FaultConfigError("drop must be a boolean")
            redirect = doc.get("redirect", "")
            if not isinstance(redirect, str) or (redirect and not redirect.startswith(("http://", "https://"))):
                raise FaultConfigError("redirect must be an http:// or https:// base URL")
            if not (latency or status or drop or redirect):
                raise FaultConfigError("a rule needs latency_ms, status, drop or redirect")
            rule = FaultRule(paths=[p.strip("/") for p in paths], latency_ms=int(latency),
                             status=status, drop=drop, remaining=count, redirect=redirect.rstrip("/"))
        with self.lock:
            if doc.get("clear"):
                self.rules.clear()
            if rule is not None:
                self.rules.append(rule)

    def decide(self, path: str) -> FaultDecision:
        """Consume one use of every rule matching `path` and combine their effects."""
        decision = FaultDecision()
        with self.lock:
            for rule in list(self.rules):
                if not rule.matches(path):
                    continue
                decision.latency_s += rule.latency_ms / 1000.0
                if not decision.drop and not decision.status and not decision.redirect:
                    decision.drop = rule.drop
                    decision.status = 0 if rule.drop else rule.status
                    decision.redirect = "" if (rule.drop or rule.status) else rule.redirect
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.rules.remove(rule)
        return decision

    def describe(self) -> list[dict]:
        with self.lock:
            return [r.describe() for r in self.rules]


def fault_body(status: int, path: str) -> dict:
    if status == 429:
        return {"errors": [RATE_LIMITED.format(path=path)]}
    if status == 503:
        return {"errors": ["Vault is sealed"]}
    if status == 500:
        return {"errors": ["internal error"]}
    return {"errors": [f"simulated error {status}"]}


class Stats:
    """Request counts per Vault path, and TLS connections per SNI name (under "_sni")."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.sni: dict[str, int] = {}

    def count(self, path: str) -> None:
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1

    def count_sni(self, name: str) -> None:
        with self.lock:
            self.sni[name] = self.sni.get(name, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            out: dict = dict(self.counts)
            if self.sni:
                out["_sni"] = dict(self.sni)
            return out

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.sni.clear()
