"""The AppRole auth method: roles, role IDs, secret IDs, login, and user lockout."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Optional

from . import errors
from .routing import NAME, Request, Response, Route
from .state import Mount, State, env_int
from .tokens import Token, calculate_ttl
from .values import (parse_bool, parse_duration, parse_int, parse_str, parse_str_list,
                     rfc3339)

# Vault's user lockout defaults: 5 failed logins within the 15-minute counter-reset window lock
# the alias (for AppRole, the role_id) for 15 minutes. Tests shorten them through the environment.
LOCKOUT_THRESHOLD = 5
LOCKOUT_SECONDS = 15 * 60

INVALID_CREDENTIALS = "invalid role or secret ID"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass
class SecretID:
    secret_id: str
    accessor: str
    creation_time: float
    ttl: int
    num_uses: int                     # uses left; 0 = unlimited
    metadata: dict = field(default_factory=dict)
    cidr_list: list[str] = field(default_factory=list)
    token_bound_cidrs: list[str] = field(default_factory=list)
    last_updated: float = 0.0

    def expired(self, now: float) -> bool:
        return self.ttl > 0 and now >= self.creation_time + self.ttl

    def describe(self) -> dict:
        return {
            "cidr_list": self.cidr_list,
            "creation_time": rfc3339(self.creation_time),
            "expiration_time": rfc3339(self.creation_time + self.ttl) if self.ttl else GO_ZERO_TIME,
            "last_updated_time": rfc3339(self.last_updated or self.creation_time),
            "metadata": self.metadata,
            "secret_id_accessor": self.accessor,
            "secret_id_num_uses": self.num_uses,
            "secret_id_ttl": self.ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
        }


@dataclass
class Role:
    name: str
    role_id: str
    bind_secret_id: bool = True
    secret_id_num_uses: int = 0
    secret_id_ttl: int = 0
    secret_id_bound_cidrs: list[str] = field(default_factory=list)
    local_secret_ids: bool = False
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_explicit_max_ttl: int = 0
    token_period: int = 0
    token_policies: list[str] = field(default_factory=list)
    token_num_uses: int = 0
    token_no_default_policy: bool = False
    token_type: str = "default"
    token_bound_cidrs: list[str] = field(default_factory=list)
    secret_ids: dict[str, SecretID] = field(default_factory=dict)

    def describe(self) -> dict:
        return {
            "bind_secret_id": self.bind_secret_id,
            "local_secret_ids": self.local_secret_ids,
            "period": self.token_period,
            "policies": self.token_policies,
            "secret_id_bound_cidrs": self.secret_id_bound_cidrs,
            "secret_id_num_uses": self.secret_id_num_uses,
            "secret_id_ttl": self.secret_id_ttl,
            "token_bound_cidrs": self.token_bound_cidrs,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_max_ttl": self.token_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "token_policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "token_type": self.token_type,
        }


class AppRoleBackend:
    def __init__(self, state: State, mount: Mount):
        self.state = state
        self.mount = mount
        self.roles: dict[str, Role] = {}
        self.entity_ids: dict[str, str] = {}
        self.failures: dict[str, list[float]] = {}
        self.locked_until: dict[str, float] = {}
        self.lockout_threshold = env_int("VAULTSIM_LOCKOUT_THRESHOLD", LOCKOUT_THRESHOLD)
        self.lockout_seconds = env_int("VAULTSIM_LOCKOUT_SECONDS", LOCKOUT_SECONDS)
        role = rf"role/(?P<role>{NAME})"
        self.routes = [
            Route(r"login", {"update": self.login}, unauth=True),
            Route(r"role/?", {"list": self.list_roles}),
            Route(role, {"read": self.read_role, "update": self.write_role,
                         "delete": self.delete_role}, existence=self.role_exists),
            Route(role + r"/role-id", {"read": self.read_role_id, "update": self.write_role_id}),
            Route(role + r"/secret-id/?", {"update": self.generate_secret_id,
                                           "list": self.list_secret_ids}),
            Route(role + r"/custom-secret-id", {"update": self.custom_secret_id}),
            Route(role + r"/secret-id/lookup", {"update": self.lookup_secret_id}),
            Route(role + r"/secret-id/destroy", {"update": self.destroy_secret_id,
                                                 "delete": self.destroy_secret_id}),
            Route(role + r"/secret-id-accessor/lookup", {"update": self.lookup_accessor}),
            Route(role + r"/secret-id-accessor/destroy", {"update": self.destroy_accessor,
                                                          "delete": self.destroy_accessor}),
        ]

    # -- roles --------------------------------------------------------------------------------

    def _role(self, req: Request) -> Optional[Role]:
        return self.roles.get(req.param("role").lower())

    def _existing_role(self, req: Request) -> Role:
        role = self._role(req)
        if role is None:
            raise errors.bad_request(f'role "{req.param("role").lower()}" does not exist')
        return role

    def role_exists(self, req: Request) -> bool:
        return self._role(req) is not None

    def list_roles(self, req: Request) -> Response:
        if not self.roles:
            return None
        return Response(data={"keys": sorted(self.roles)})

    def read_role(self, req: Request) -> Optional[Response]:
        role = self._role(req)
        return Response(data=role.describe()) if role else None

    def write_role(self, req: Request) -> None:
        d = req.data
        name = req.param("role").lower()
        role = self.roles.get(name)
        creating = role is None
        if creating:
            role = Role(name=name, role_id=str(uuid.uuid4()))
        if "role_id" in d and creating:
            role.role_id = parse_str(d["role_id"], "role_id") or role.role_id
        if "bind_secret_id" in d:
            role.bind_secret_id = parse_bool(d["bind_secret_id"], "bind_secret_id", True)
        if "secret_id_num_uses" in d:
            role.secret_id_num_uses = parse_int(d["secret_id_num_uses"], "secret_id_num_uses")
            if role.secret_id_num_uses < 0:
                raise errors.bad_request("secret_id_num_uses cannot be negative")
        for fname in ("secret_id_ttl", "token_ttl", "token_max_ttl", "token_explicit_max_ttl"):
            if fname in d:
                setattr(role, fname, parse_duration(d[fname], fname))
        for fname in ("token_period", "period"):
            if fname in d:
                role.token_period = parse_duration(d[fname], fname)
        for fname in ("token_policies", "policies"):
            if fname in d:
                role.token_policies = sorted({p.lower() for p in parse_str_list(d[fname], fname)})
        if "token_num_uses" in d:
            role.token_num_uses = parse_int(d["token_num_uses"], "token_num_uses")
            if role.token_num_uses < 0:
                raise errors.bad_request("token_num_uses cannot be negative")
        if "token_no_default_policy" in d:
            role.token_no_default_policy = parse_bool(d["token_no_default_policy"],
                                                      "token_no_default_policy")
        if "token_type" in d:
            role.token_type = parse_str(d["token_type"], "token_type") or "default"
            if role.token_type not in ("default", "service", "batch", "default-service",
                                       "default-batch"):
                raise errors.bad_request(f'invalid "token_type" value "{role.token_type}"')
        for fname in ("secret_id_bound_cidrs", "token_bound_cidrs"):
            if fname in d:
                setattr(role, fname, parse_str_list(d[fname], fname))
        if "local_secret_ids" in d and creating:
            role.local_secret_ids = parse_bool(d["local_secret_ids"], "local_secret_ids")
        if role.token_max_ttl > 0 and role.token_ttl > role.token_max_ttl:
            raise errors.bad_request("token_ttl should not be greater than token_max_ttl")
        if not role.bind_secret_id and not role.secret_id_bound_cidrs and not role.token_bound_cidrs:
            raise errors.bad_request("at least one constraint should be enabled on the role")
        for other in self.roles.values():
            if other.name != name and other.role_id == role.role_id:
                raise errors.bad_request("role_id already in use")
        self.roles[name] = role
        return None

    def delete_role(self, req: Request) -> None:
        self.roles.pop(req.param("role").lower(), None)
        return None

    def read_role_id(self, req: Request) -> Optional[Response]:
        role = self._role(req)
        return Response(data={"role_id": role.role_id}) if role else None

    def write_role_id(self, req: Request) -> None:
        role = self._existing_role(req)
        new_id = parse_str(req.data.get("role_id"), "role_id")
        if not new_id:
            raise errors.bad_request("missing role_id")
        role.role_id = new_id
        return None

    # -- secret IDs ---------------------------------------------------------------------------

    def _issue(self, req: Request, secret_value: str) -> Response:
        role = self._existing_role(req)
        d = req.data
        num_uses = role.secret_id_num_uses
        if "num_uses" in d:
            num_uses = parse_int(d["num_uses"], "num_uses")
            if num_uses < 0:
                raise errors.bad_request("num_uses cannot be negative")
            if role.secret_id_num_uses > 0 and (num_uses == 0 or num_uses > role.secret_id_num_uses):
                raise errors.bad_request("num_uses cannot be higher than the role's secret_id_num_uses")
        ttl = role.secret_id_ttl
        if "ttl" in d:
            ttl = parse_duration(d["ttl"], "ttl")
            if role.secret_id_ttl > 0 and (ttl == 0 or ttl > role.secret_id_ttl):
                raise errors.bad_request("ttl cannot be longer than the role's secret_id_ttl")
        metadata = d.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                raise errors.bad_request("failed to parse metadata: invalid JSON")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise errors.bad_request("metadata must be a map of strings")
        if secret_value in role.secret_ids:
            raise errors.bad_request("SecretID is already registered")
        now = self.state.now()
        entry = SecretID(secret_id=secret_value, accessor=str(uuid.uuid4()), creation_time=now,
                         ttl=ttl, num_uses=num_uses, metadata=metadata,
                         cidr_list=parse_str_list(d.get("cidr_list"), "cidr_list"),
                         token_bound_cidrs=parse_str_list(d.get("token_bound_cidrs"),
                                                          "token_bound_cidrs"))
        role.secret_ids[secret_value] = entry
        return Response(data={
            "secret_id": entry.secret_id,
            "secret_id_accessor": entry.accessor,
            "secret_id_num_uses": entry.num_uses,
            "secret_id_ttl": entry.ttl,
        })

    def generate_secret_id(self, req: Request) -> Response:
        return self._issue(req, str(uuid.uuid4()))

    def custom_secret_id(self, req: Request) -> Response:
        value = parse_str(req.data.get("secret_id"), "secret_id")
        if not value:
            raise errors.bad_request("missing secret_id")
        return self._issue(req, value)

    def _live_secret_ids(self, role: Role) -> dict[str, SecretID]:
        now = self.state.now()
        for value in [v for v, e in role.secret_ids.items() if e.expired(now)]:
            del role.secret_ids[value]
        return role.secret_ids

    def list_secret_ids(self, req: Request) -> Optional[Response]:
        role = self._existing_role(req)
        keys = sorted(e.accessor for e in self._live_secret_ids(role).values())
        return Response(data={"keys": keys}) if keys else None

    def lookup_secret_id(self, req: Request) -> Optional[Response]:
        role = self._existing_role(req)
        entry = self._live_secret_ids(role).get(parse_str(req.data.get("secret_id"), "secret_id"))
        return Response(data=entry.describe()) if entry else None

    def destroy_secret_id(self, req: Request) -> None:
        role = self._existing_role(req)
        role.secret_ids.pop(parse_str(req.data.get("secret_id"), "secret_id"), None)
        return None

    def _by_accessor(self, role: Role, accessor: str) -> SecretID:
        for entry in self._live_secret_ids(role).values():
            if entry.accessor == accessor:
                return entry
        raise errors.bad_request(f'failed to find accessor entry for secret_id_accessor: "{accessor}"')

    def lookup_accessor(self, req: Request) -> Response:
        role = self._existing_role(req)
        accessor = parse_str(req.data.get("secret_id_accessor"), "secret_id_accessor")
        return Response(data=self._by_accessor(role, accessor).describe())

    def destroy_accessor(self, req: Request) -> None:
        role = self._existing_role(req)
        accessor = parse_str(req.data.get("secret_id_accessor"), "secret_id_accessor")
        entry = self._by_accessor(role, accessor)
        role.secret_ids.pop(entry.secret_id, None)
        return None

    # -- login --------------------------------------------------------------------------------

    def _check_lockout(self, role_id: str, now: float) -> None:
        until = self.locked_until.get(role_id)
        if until is None:
            return
        if now < until:
            raise errors.permission_denied()
        del self.locked_until[role_id]
        self.failures.pop(role_id, None)

    def _record_failure(self, role_id: str, now: float) -> None:
        window = [t for t in self.failures.get(role_id, []) if now - t < self.lockout_seconds]
        window.append(now)
        self.failures[role_id] = window
        if len(window) >= self.lockout_threshold:
            self.locked_until[role_id] = now + self.lockout_seconds

    def login(self, req: Request) -> Response:
        d = req.data
        now = self.state.now()
        role_id = parse_str(d.get("role_id"), "role_id")
        if not role_id:
            raise errors.bad_request("missing role_id")
        role = next((r for r in self.roles.values() if r.role_id == role_id), None)
        if role is None:
            raise errors.bad_request(INVALID_CREDENTIALS)
        self._check_lockout(role_id, now)
        metadata = {"role_name": role.name}
        if role.bind_secret_id:
            secret_value = parse_str(d.get("secret_id"), "secret_id")
            if not secret_value:
                raise errors.bad_request("missing secret_id")
            entry = self._live_secret_ids(role).get(secret_value)
            if entry is None:
                self._record_failure(role_id, now)
                raise errors.bad_request(INVALID_CREDENTIALS)
            if entry.num_uses > 0:
                entry.num_uses -= 1
                entry.last_updated = now
                if entry.num_uses == 0:
                    del role.secret_ids[secret_value]
            metadata.update(entry.metadata)
        self.failures.pop(role_id, None)
        return self._issue_token(req, role, metadata, now)

    def _issue_token(self, req: Request, role: Role, metadata: dict, now: float) -> Response:
        ns = req.namespace
        ttl, warnings = calculate_ttl(now, now, 0, role.token_ttl, role.token_period,
                                      role.token_max_ttl, role.token_explicit_max_ttl,
                                      self.mount.effective_default_ttl(),
                                      self.mount.effective_max_ttl())
        policies = list(role.token_policies)
        if not role.token_no_default_policy and "default" not in policies:
            policies.append("default")
        policies = sorted(set(policies))
        store = self.state.tokens
        token_id, accessor = store.new_ids(ns.path)
        entity_id = self.entity_ids.setdefault(role.role_id, str(uuid.uuid4()))
        token = store.add(Token(
            id=token_id, accessor=accessor, namespace=ns.path, policies=policies,
            token_policies=policies, display_name=self.mount.path.rstrip("/").replace("/", "-"),
            path=f"auth/{self.mount.path}login", creation_time=now, creation_ttl=ttl,
            expire_at=now + ttl, meta=metadata, explicit_max_ttl=role.token_explicit_max_ttl,
            period=role.token_period, num_uses=role.token_num_uses, orphan=True, renewable=True,
            entity_id=entity_id, auth_mount_accessor=self.mount.accessor, role_name=role.name))
        return Response(data=None, auth=store.auth_block(token, ttl), warnings=warnings or None)

    def renew_limits(self, token: Token) -> tuple[int, int, int]:
        """TTL, max TTL and period for a renewal, from the role as it is now."""
        role = self.roles.get(token.role_name)
        if role is None:
            raise errors.bad_request(f"role {token.role_name} does not exist during renewal")
        expected = sorted(set(role.token_policies) | ({"default"} if not role.token_no_default_policy
                                                      else set()))
        if expected != sorted(token.token_policies):
            raise errors.bad_request("policies have changed, not renewing")
        return role.token_ttl, role.token_max_ttl, role.token_period

