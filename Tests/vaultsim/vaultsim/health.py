"""The sys endpoints Vault serves without a token and without the response envelope:
health, unseal and leader (seal-status lives on the state). The HTTP layer calls these directly."""

from __future__ import annotations

import base64
import binascii

from .state import State


def health(state: State, query: dict[str, str]) -> tuple[int, dict]:
    def code(name: str, default: int) -> int:
        try:
            return int(query.get(name, default))
        except ValueError:
            return default

    body = {
        "initialized": True,
        "sealed": state.sealed,
        "standby": False,
        "performance_standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(state.now()),
        "version": state.edition.version,
        "enterprise": state.edition.enterprise,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    }
    if state.edition.name == "openbao":  # OpenBao 2.7's sys/health has none of these
        for name in ("performance_standby", "enterprise", "echo_duration_ms", "clock_skew_ms"):
            del body[name]
    if state.sealed:
        return code("sealedcode", 503), body
    body["cluster_name"] = state.cluster_name
    body["cluster_id"] = state.cluster_id
    return code("activecode", 200), body


def unseal(state: State, data: dict) -> tuple[int, dict]:
    if data.get("reset"):
        return 200, state.seal_status()
    key = data.get("key")
    if not isinstance(key, str) or not key:
        return 400, {"errors": ["'key' must be specified in request body as JSON, or 'reset' set to true"]}
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            return 400, {"errors": ["'key' must be a valid hex or base64 string"]}
    if state.sealed and raw != state.unseal_key:
        return 400, {"errors": ["Unseal failed, invalid key"]}
    state.sealed = False
    return 200, state.seal_status()


def leader(state: State) -> dict:
    return {
        "ha_enabled": False,
        "is_self": False,
        "active_time": "0001-01-01T00:00:00Z",
        "leader_address": "",
        "leader_cluster_address": "",
        "performance_standby": False,
        "performance_standby_last_remote_wal": 0,
    }
