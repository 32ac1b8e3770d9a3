"""Server-wide state: edition, clock, seal, namespaces and their mounts and policies.

Everything mutable hangs off one ``State`` object guarded by one re-entrant lock; the HTTP layer
holds it for the whole of a logical request.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from . import policy as acl

# Vault's system-wide default and maximum lease TTL (32 days), used when a mount sets neither.
SYSTEM_DEFAULT_TTL = 768 * 3600
SYSTEM_MAX_TTL = 768 * 3600


@dataclass(frozen=True)
class Edition:
    name: str
    version: str
    enterprise: bool          # reported in sys/health
    namespaces: bool          # X-Vault-Namespace selects an isolated namespace
    license: bool             # sys/license/status exists


EDITIONS = {
    "community": Edition("community", "1.17.2", False, False, False),
    "enterprise": Edition("enterprise", "1.17.2+ent", True, True, True),
    "openbao": Edition("openbao", "2.7.2", False, True, False),
}

BUILD_DATE = "2024-07-05T15:19:12Z"


def random_id(n: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def accessor_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


@dataclass
class Mount:
    """A secrets engine or auth method mounted at `path` (which ends in "/")."""

    path: str
    type: str
    backend: Any
    accessor: str
    description: str = ""
    default_lease_ttl: int = 0
    max_lease_ttl: int = 0
    local: bool = False
    seal_wrap: bool = False
    options: Optional[dict] = None
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    is_auth: bool = False

    def mount_class(self) -> str:
        return "auth" if self.is_auth else "secret"

    def effective_default_ttl(self) -> int:
        return self.default_lease_ttl or SYSTEM_DEFAULT_TTL

    def effective_max_ttl(self) -> int:
        return self.max_lease_ttl or SYSTEM_MAX_TTL

    def running_version(self) -> str:
        return "v1.17.2+builtin.vault"

    def describe(self) -> dict:
        return {
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.default_lease_ttl,
                "force_no_cache": False,
                "max_lease_ttl": self.max_lease_ttl,
            },
            "description": self.description,
            "external_entropy_access": False,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": self.running_version(),
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.type,
            "uuid": self.uuid,
        }


@dataclass
class Namespace:
    path: str                       # "" for root, else "team-a/" or "team-a/child/"
    id: str
    mounts: dict[str, Mount] = field(default_factory=dict)       # secrets engines and sys
    auth: dict[str, Mount] = field(default_factory=dict)         # auth methods, without "auth/"
    policies: dict[str, acl.Policy] = field(default_factory=dict)
    custom_metadata: dict = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self) -> dict:
        return {
            "custom_metadata": self.custom_metadata,
            "id": self.id,
            "locked": False,
            "path": self.path,
            "tainted": False,
            "uuid": self.uuid,
        }


class State:
    def __init__(self, edition: Edition, root_token_id: str):
        self.lock = threading.RLock()
        self.edition = edition
        self.clock_offset = 0.0
        self.sealed = False
        self.unseal_key = secrets.token_bytes(32)
        self.root_token_id = root_token_id
        self.cluster_name = f"vault-cluster-{secrets.token_hex(4)}"
        self.cluster_id = str(uuid.uuid4())
        self.namespaces: dict[str, Namespace] = {}
        self.audit_devices: dict[str, Any] = {}      # path -> audit.FileAuditDevice
        self.backend_factories: dict[str, Any] = {}  # mount type -> callable(state, mount) -> backend
        self.auth_factories: dict[str, Any] = {}
        self.tokens: Any = None                      # tokens.TokenStore, set by the builder
        self.system_backend: Any = None
        self.token_backend: Any = None

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall clock plus the offset tests may add through /_sim/clock."""
        return time.time() + self.clock_offset

    # -- seal ---------------------------------------------------------------------------------

    def unseal_key_b64(self) -> str:
        return base64.b64encode(self.unseal_key).decode()

    def seal_status(self) -> dict:
        status = {
            "type": "shamir",
            "initialized": True,
            "sealed": self.sealed,
            "t": 1,
            "n": 1,
            "progress": 0,
            "nonce": "",
            "version": self.edition.version,
            **({} if self.edition.name == "openbao" else {"build_date": BUILD_DATE}),
            "migration": False,
            "recovery_seal": False,
            "storage_type": "inmem",
        }
        if not self.sealed:
            status["cluster_name"] = self.cluster_name
            status["cluster_id"] = self.cluster_id
        return status

    # -- namespaces ---------------------------------------------------------------------------

    def new_namespace(self, path: str) -> Namespace:
        ns = Namespace(path=path, id="root" if path == "" else random_id(5))
        ns.policies["default"] = acl.parse_policy("default", acl.DEFAULT_POLICY)
        ns.mounts["sys/"] = Mount("sys/", "system", self.system_backend, accessor_id("system"),
                                  description="system endpoints used for control, policy and debugging")
        ns.mounts["cubbyhole/"] = Mount("cubbyhole/", "cubbyhole", None, accessor_id("cubbyhole"),
                                        description="per-token private secret storage", local=True)
        ns.mounts["identity/"] = Mount("identity/", "identity", None, accessor_id("identity"),
                                       description="identity store")
        ns.auth["token/"] = Mount("token/", "token", self.token_backend, accessor_id("auth_token"),
                                  description="token based credentials", is_auth=True)
        self.namespaces[path] = ns
        return ns

    def root_namespace(self) -> Namespace:
        return self.namespaces[""]

    def resolve_namespace(self, header: str) -> Optional[Namespace]:
        """The namespace an X-Vault-Namespace header selects (None when it does not exist)."""
        if not self.edition.namespaces:
            return self.root_namespace()
        name = header.strip().strip("/")
        if name in ("", "root"):
            return self.root_namespace()
        return self.namespaces.get(name + "/")

    def acl_for(self, token, request_ns: Namespace) -> acl.ACL:
        """The ACL of a token, as it applies to requests made in `request_ns`."""
        if "root" in token.policies:
            return acl.ACL([], root=True)
        token_ns = self.namespaces.get(token.namespace)
        if token_ns is None:
            return acl.ACL([])
        found = [token_ns.policies[name] for name in token.policies if name in token_ns.policies]
        return acl.ACL(found)

    @staticmethod
    def acl_path(token, request_ns: Namespace, path: str) -> str:
        """A request path as seen from the token's namespace (policies name child paths in full)."""
        return request_ns.path[len(token.namespace):] + path


def new_uuid() -> str:
    return str(uuid.uuid4())


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        return default
