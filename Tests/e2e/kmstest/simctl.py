"""The one client of the Vault simulator's control endpoints (`/_sim/...`, listed in
Tests/vaultsim/README.md): request statistics, fault rules, the clock and the live tokens.

Every function takes the simulator as an address (`http://127.0.0.1:port`) or as anything with an
`address` attribute (a vaultenv server or VaultSetup), and `verify` for the simulator's TLS
listener: True (the system's CAs), False, or the path of a CA file. A refused request raises
urllib.error.HTTPError."""
import json
import ssl
import urllib.request


def _address(target):
    return getattr(target, "address", target)


def _context(address, verify):
    if not address.startswith("https:"):
        return None
    if verify is False:
        return ssl._create_unverified_context()
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


def request(target, path, body=None, verify=True, post=None):
    """POST `body` as JSON (GET when there is none, unless `post`) to /_sim/<path>; returns the
    decoded answer, None for an empty one."""
    address = _address(target)
    post = body is not None if post is None else post
    data = json.dumps(body).encode() if body is not None else (b"" if post else None)
    sent = urllib.request.Request(f"{address}/_sim/{path}", data=data, method="POST" if post else "GET",
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(sent, timeout=5, context=_context(address, verify)) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def stats(target, verify=True):
    """{vault path: requests served, ..., "_sni": {server name: connections}}."""
    return request(target, "stats", verify=verify)


def request_counts(target, verify=True):
    """The statistics without the entries that are not Vault paths (`_sni`)."""
    return {path: count for path, count in stats(target, verify).items() if not path.startswith("_")}


def reset_stats(target, verify=True):
    request(target, "stats/reset", verify=verify, post=True)


def advance_clock(target, seconds, verify=True):
    return request(target, "clock", {"advance": seconds}, verify=verify)


def add_fault(target, rule, verify=True):
    """Adds a fault rule ({"paths": [...], "latency_ms"/"status"/"drop"/"redirect", "count"})."""
    request(target, "faults", rule, verify=verify)


def fault(target, verify=True, **rule):
    """Replaces every fault rule with this one."""
    add_fault(target, {"clear": True, **rule}, verify=verify)


def clear_faults(target, verify=True):
    add_fault(target, {"clear": True}, verify=verify)


def tokens(target, verify=True):
    """Every live token the simulator holds: [{"id", "accessor", "path"}] (the values, for memory scans)."""
    return request(target, "tokens", verify=verify)["tokens"]
