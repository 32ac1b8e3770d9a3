"""The sys/ backend: mounts, auth methods, policies, capabilities, license and seal, plus the
namespace and audit-device routes (namespaces.py, audit.py). The endpoints served without a token
(health, seal-status, unseal, leader, init) are answered by the HTTP layer (health.py)."""

from __future__ import annotations

import uuid
from typing import Optional

from . import errors
from . import policy as acl
from .audit import AuditEndpoints
from .namespaces import NamespaceEndpoints
from .routing import Request, Response, Route
from .state import Mount, Namespace, State, accessor_id
from .values import parse_duration, parse_str, parse_str_list, rfc3339

PROTECTED_MOUNTS = ("sys/", "auth/", "cubbyhole/", "identity/")
LICENSE_FEATURES = [
    "HSM", "Performance Replication", "DR Replication", "MFA", "Sentinel", "Seal Wrapping",
    "Control Groups", "Performance Standby", "Namespaces", "KMIP", "Entropy Augmentation",
    "Transform Secrets Engine", "Lease Count Quotas", "Key Management Secrets Engine",
    "Automated Snapshots",
]


def _mount_path(raw: str) -> str:
    path = raw.strip("/")
    return path + "/" if path else ""


# -------------------------------------------------------------------------------------------------


class SystemBackend:
    def __init__(self, state: State):
        self.state = state
        self.namespaces = NamespaceEndpoints(state)
        self.audit = AuditEndpoints(state)
        self.routes = self.namespaces.routes + self.audit.routes + [
            Route(r"seal", {"update": self.seal}, sudo=True),
            Route(r"mounts", {"read": self.list_mounts}),
            Route(r"mounts/(?P<path>.+?)/tune", {"read": self.read_tune, "update": self.tune}),
            Route(r"mounts/(?P<path>.+)", {"read": self.read_mount, "update": self.enable_mount,
                                            "delete": self.disable_mount}),
            Route(r"auth", {"read": self.list_auth}),
            Route(r"auth/(?P<path>.+?)/tune", {"read": self.read_auth_tune,
                                               "update": self.tune_auth}, sudo=True),
            Route(r"auth/(?P<path>.+)", {"read": self.read_auth, "update": self.enable_auth,
                                          "delete": self.disable_auth}, sudo=True),
            Route(r"policy/?", {"read": self.list_policies_legacy, "list": self.list_policies}),
            Route(r"policy/(?P<name>.+)", {"read": self.read_policy_legacy,
                                            "update": self.write_policy,
                                            "delete": self.delete_policy}),
            Route(r"policies/acl/?", {"list": self.list_policies}),
            Route(r"policies/acl/(?P<name>.+)", {"read": self.read_policy,
                                                  "update": self.write_policy,
                                                  "delete": self.delete_policy}),
            Route(r"capabilities-self", {"update": self.capabilities_self}),
            Route(r"capabilities", {"update": self.capabilities}),
            Route(r"license/status", {"read": self.license_status}),
        ]

    # -- seal ---------------------------------------------------------------------------------

    def seal(self, req: Request) -> None:
        if req.namespace.path:
            raise errors.bad_request("sealing is only possible from the root namespace")
        self.state.sealed = True
        return None

    # -- secrets engines ----------------------------------------------------------------------

    def list_mounts(self, req: Request) -> Response:
        data = {path: m.describe() for path, m in sorted(req.namespace.mounts.items())}
        return Response(data=data, top_level=True)

    def _find_mount(self, ns: Namespace, raw: str) -> tuple[Optional[Mount], bool]:
        path = _mount_path(raw)
        if path.startswith("auth/"):
            return ns.auth.get(path[len("auth/"):]), True
        return ns.mounts.get(path), False

    def read_mount(self, req: Request) -> Optional[Response]:
        mount, _ = self._find_mount(req.namespace, req.param("path"))
        return Response(data=mount.describe()) if mount else None

    @staticmethod
    def _conflict(existing: dict[str, Mount], path: str, prefix: str = "") -> Optional[str]:
        for other in existing:
            if path.startswith(other) or other.startswith(path):
                return prefix + other
        return None

    @staticmethod
    def _apply_config(mount: Mount, config: dict) -> None:
        if not isinstance(config, dict):
            raise errors.bad_request("config must be an object")
        if "default_lease_ttl" in config:
            mount.default_lease_ttl = parse_duration(config["default_lease_ttl"], "default_lease_ttl")
        if "max_lease_ttl" in config:
            mount.max_lease_ttl = parse_duration(config["max_lease_ttl"], "max_lease_ttl")
        if mount.max_lease_ttl and mount.default_lease_ttl > mount.max_lease_ttl:
            raise errors.bad_request("backend max lease TTL cannot be less than default lease TTL")

    def enable_mount(self, req: Request) -> None:
        ns = req.namespace
        path = _mount_path(req.param("path"))
        mount_type = parse_str(req.data.get("type"), "type")
        if not mount_type:
            raise errors.bad_request("backend type must be specified as a string")
        for protected in PROTECTED_MOUNTS:
            if path.startswith(protected) or protected.startswith(path):
                raise errors.bad_request(f"cannot mount under {protected}" if path != protected
                                         else f"path is already in use at {protected}")
        conflict = self._conflict(ns.mounts, path)
        if conflict:
            raise errors.bad_request(f"path is already in use at {conflict}")
        factory = self.state.backend_factories.get(mount_type)
        if factory is None:
            raise errors.bad_request(f"plugin not found in the catalog: {mount_type}")
        mount = Mount(path=path, type=mount_type, backend=None, accessor=accessor_id(mount_type),
                      description=parse_str(req.data.get("description"), "description"),
                      options=req.data.get("options") or None,
                      local=bool(req.data.get("local")), seal_wrap=bool(req.data.get("seal_wrap")))
        self._apply_config(mount, req.data.get("config") or {})
        mount.backend = factory(self.state, mount)
        ns.mounts[path] = mount
        return None

    def disable_mount(self, req: Request) -> None:
        ns = req.namespace
        path = _mount_path(req.param("path"))
        if path.startswith("auth/"):
            return self._disable_auth_path(ns, path[len("auth/"):])
        if path in PROTECTED_MOUNTS:
            raise errors.bad_request(f"cannot unmount {path!r}")
        ns.mounts.pop(path, None)
        return None

    def _read_tune(self, ns: Namespace, raw_path: str) -> Response:
        mount, _ = self._find_mount(ns, raw_path)
        if mount is None:
            raise errors.bad_request(f'cannot fetch sysview for path "{_mount_path(raw_path)}"')
        return Response(data={
            "default_lease_ttl": mount.effective_default_ttl(),
            "max_lease_ttl": mount.effective_max_ttl(),
            "force_no_cache": False,
            "description": mount.description,
            "options": mount.options,
        }, top_level=True)

    def _tune(self, ns: Namespace, raw_path: str, data: dict) -> None:
        mount, _ = self._find_mount(ns, raw_path)
        if mount is None:
            raise errors.bad_request(f'cannot tune "{_mount_path(raw_path)}": no mount')
        self._apply_config(mount, {k: v for k, v in data.items()
                                   if k in ("default_lease_ttl", "max_lease_ttl")})
        if "description" in data:
            mount.description = parse_str(data["description"], "description")
        return None

    def read_tune(self, req: Request) -> Response:
        return self._read_tune(req.namespace, req.param("path"))

    def tune(self, req: Request) -> None:
        return self._tune(req.namespace, req.param("path"), req.data)

    # -- auth methods -------------------------------------------------------------------------

    def list_auth(self, req: Request) -> Response:
        data = {path: m.describe() for path, m in sorted(req.namespace.auth.items())}
        return Response(data=data, top_level=True)

    def read_auth(self, req: Request) -> Optional[Response]:
        mount = req.namespace.auth.get(_mount_path(req.param("path")))
        return Response(data=mount.describe()) if mount else None

    def enable_auth(self, req: Request) -> None:
        ns = req.namespace
        path = _mount_path(req.param("path"))
        auth_type = parse_str(req.data.get("type"), "type")
        if not auth_type:
            raise errors.bad_request("backend type must be specified as a string")
        if auth_type == "token":
            raise errors.bad_request("token credential backend cannot be instantiated")
        conflict = self._conflict(ns.auth, path, prefix="auth/")
        if conflict:
            raise errors.bad_request(f"path is already in use at {conflict}")
        factory = self.state.auth_factories.get(auth_type)
        if factory is None:
            raise errors.bad_request(f"plugin not found in the catalog: {auth_type}")
        mount = Mount(path=path, type=auth_type, backend=None, accessor=accessor_id(f"auth_{auth_type}"),
                      description=parse_str(req.data.get("description"), "description"),
                      options=req.data.get("options") or None, local=bool(req.data.get("local")),
                      seal_wrap=bool(req.data.get("seal_wrap")), is_auth=True)
        self._apply_config(mount, req.data.get("config") or {})
        mount.backend = factory(self.state, mount)
        ns.auth[path] = mount
        return None

    def _disable_auth_path(self, ns: Namespace, path: str) -> None:
        if path == "token/":
            raise errors.bad_request("token credential backend cannot be disabled")
        mount = ns.auth.pop(path, None)
        if mount is not None:
            for token in list(self.state.tokens.by_id.values()):
                if token.auth_mount_accessor == mount.accessor:
                    self.state.tokens.revoke(token)
        return None

    def disable_auth(self, req: Request) -> None:
        return self._disable_auth_path(req.namespace, _mount_path(req.param("path")))

    def read_auth_tune(self, req: Request) -> Response:
        return self._read_tune(req.namespace, "auth/" + req.param("path"))

    def tune_auth(self, req: Request) -> None:
        return self._tune(req.namespace, "auth/" + req.param("path"), req.data)

    # -- policies -----------------------------------------------------------------------------

    @staticmethod
    def _policy_names(ns: Namespace) -> list[str]:
        return sorted(set(ns.policies) | {"root"})

    def list_policies(self, req: Request) -> Response:
        names = self._policy_names(req.namespace)
        return Response(data={"keys": names, "policies": names}, top_level=True)

    def list_policies_legacy(self, req: Request) -> Response:
        return self.list_policies(req)

    def read_policy(self, req: Request) -> Optional[Response]:
        name = req.param("name").lower()
        found = req.namespace.policies.get(name)
        if found is None:
            return None
        return Response(data={"name": name, "policy": found.text})

    def read_policy_legacy(self, req: Request) -> Optional[Response]:
        name = req.param("name").lower()
        found = req.namespace.policies.get(name)
        if found is None:
            return None
        return Response(data={"name": name, "rules": found.text}, top_level=True)

    def write_policy(self, req: Request) -> None:
        name = req.param("name").lower()
        text = req.data.get("policy")
        if text is None:
            text = req.data.get("rules")
        if not isinstance(text, str) or not text.strip():
            raise errors.bad_request("'policy' parameter not supplied or empty")
        if name == "root":
            raise errors.bad_request('cannot update "root" policy')
        req.namespace.policies[name] = acl.parse_policy(name, text)
        return None

    def delete_policy(self, req: Request) -> None:
        name = req.param("name").lower()
        if name in ("root", "default"):
            raise errors.bad_request(f'cannot delete "{name}" policy')
        req.namespace.policies.pop(name, None)
        return None

    # -- capabilities -------------------------------------------------------------------------

    def _capabilities(self, req: Request, token) -> Response:
        paths = parse_str_list(req.data.get("paths"), "paths")
        if not paths and req.data.get("path"):
            paths = [parse_str(req.data.get("path"), "path")]
        if not paths:
            raise errors.bad_request("paths must be supplied")
        rules = self.state.acl_for(token, req.namespace)
        data: dict = {}
        for path in paths:
            data[path] = acl.capability_list(rules, self.state.acl_path(token, req.namespace,
                                                                        path.lstrip("/")))
        if len(paths) == 1:
            data["capabilities"] = data[paths[0]]
        return Response(data=data, top_level=True)

    def capabilities_self(self, req: Request) -> Response:
        return self._capabilities(req, req.token)

    def capabilities(self, req: Request) -> Response:
        token_id = parse_str(req.data.get("token"), "token")
        token = self.state.tokens.lookup(token_id) if token_id else None
        if token is None:
            raise errors.bad_request("invalid token")
        return self._capabilities(req, token)

    # -- license ------------------------------------------------------------------------------

    def license_status(self, req: Request) -> Response:
        if not self.state.edition.license:
            if self.state.edition.name == "openbao":
                raise errors.unsupported_path()
            raise errors.plain(404, "enterprise-only feature")
        start = self.state.now() - 86400
        details = {
            "license_id": str(uuid.UUID(int=0x5151)),
            "customer_id": str(uuid.UUID(int=0xC0FFEE)),
            "installation_id": "*",
            "issue_time": rfc3339(start),
            "start_time": rfc3339(start),
            "expiration_time": rfc3339(start + 366 * 86400),
            "termination_time": rfc3339(start + 366 * 86400 + 30 * 86400),
            "product": "Vault",
            "flags": {"modules": ["multi-dc-scale", "governance-policy"]},
            "features": LICENSE_FEATURES,
            "performance_standby_count": 9999,
        }
        return Response(data={"autoloading_used": True, "autoloaded": details,
                              "persisted_autoload": details})
