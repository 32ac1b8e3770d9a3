"""The token store: service tokens, their TTL arithmetic, and the auth/token/* endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from . import errors
from .routing import Request, Response, Route
from .state import SYSTEM_DEFAULT_TTL, SYSTEM_MAX_TTL, State, random_id
from .values import (human_duration, parse_bool, parse_duration, parse_int, parse_str,
                     parse_str_list, rfc3339)


@dataclass
class Token:
    id: str
    accessor: str
    namespace: str                    # path of the namespace that issued it ("" = root)
    policies: list[str]
    token_policies: list[str]
    display_name: str
    path: str                         # the login or create path that issued it
    creation_time: float
    creation_ttl: int
    expire_at: Optional[float]        # None: never expires (root token)
    meta: Optional[dict] = None
    explicit_max_ttl: int = 0
    period: int = 0
    num_uses: int = 0
    orphan: bool = True
    renewable: bool = True
    entity_id: str = ""
    parent: Optional[str] = None
    children: set[str] = field(default_factory=set)
    last_renewal: Optional[float] = None
    # Where renewals take their TTL limits from: the auth mount and role that issued the token,
    # or, for tokens from auth/token/create, the values given at creation.
    auth_mount_accessor: str = ""
    role_name: str = ""
    backend_ttl: int = 0
    backend_max_ttl: int = 0
    revoke_after_use: bool = False

    @property
    def is_root(self) -> bool:
        return "root" in self.policies

    def ttl_left(self, now: float) -> int:
        if self.expire_at is None:
            return 0
        return max(0, int(self.expire_at - now))


def calculate_ttl(now: float, start: float, increment: int, backend_ttl: int, period: int,
                  backend_max_ttl: int, explicit_max_ttl: int, mount_default: int,
                  mount_max: int) -> tuple[int, list[str]]:
    """Vault's TTL rule for logins and renewals.

    The TTL is the period, else the increment, else the backend's TTL, else the mount default;
    it may not run past start + the smallest of (mount max, backend max, explicit max), and a
    capped value carries a warning.
    """
    warnings: list[str] = []
    ttl = mount_default
    max_ttl = mount_max
    if 0 < backend_max_ttl < max_ttl:
        max_ttl = backend_max_ttl
    if 0 < explicit_max_ttl < max_ttl:
        max_ttl = explicit_max_ttl
    max_valid_time: Optional[float] = None
    if period > 0:
        if period > max_ttl:
            warnings.append(f'period of "{human_duration(period)}" exceeded the effective max_ttl of '
                            f'"{human_duration(max_ttl)}"; period value is capped accordingly')
            period = max_ttl
        ttl = period
        if explicit_max_ttl > 0:
            max_valid_time = start + explicit_max_ttl
    else:
        if increment > 0:
            ttl = increment
        elif backend_ttl > 0:
            ttl = backend_ttl
        max_valid_time = start + max_ttl
    if max_valid_time is not None:
        max_valid_ttl = int(max_valid_time - now)
        if max_valid_ttl <= 0:
            raise errors.bad_request("past the max TTL, cannot renew")
        if now + ttl > max_valid_time:
            warnings.append(f'TTL of "{human_duration(ttl)}" exceeded the effective max_ttl of '
                            f'"{human_duration(max_valid_ttl)}"; TTL value is capped accordingly')
            ttl = max_valid_ttl
    return ttl, warnings


class TokenStore:
    def __init__(self, state: State):
        self.state = state
        self.by_id: dict[str, Token] = {}
        self.by_accessor: dict[str, Token] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def new_ids(self, namespace: str) -> tuple[str, str]:
        suffix = ""
        if namespace:
            suffix = "." + self.state.namespaces[namespace].id
        while True:
            token_id = "hvs." + random_id(24) + suffix
            if token_id not in self.by_id:
                return token_id, random_id(24) + suffix

    def add(self, token: Token) -> Token:
        self.by_id[token.id] = token
        self.by_accessor[token.accessor] = token
        if token.parent and token.parent in self.by_id:
            self.by_id[token.parent].children.add(token.id)
        return token

    def create_root(self, token_id: str) -> Token:
        now = self.state.now()
        return self.add(Token(
            id=token_id, accessor=random_id(24), namespace="", policies=["root"],
            token_policies=["root"], display_name="root", path="auth/token/root",
            creation_time=now, creation_ttl=0, expire_at=None, renewable=False))

    def lookup(self, token_id: str) -> Optional[Token]:
        """The live token with this id; an expired token is revoked on sight and not returned."""
        token = self.by_id.get(token_id)
        if token is None:
            return None
        if token.expire_at is not None and self.state.now() >= token.expire_at:
            self.revoke(token)
            return None
        return token

    def revoke(self, token: Token) -> None:
        """Revoke a token and, unless they are orphans, its children."""
        for child_id in list(token.children):
            child = self.by_id.get(child_id)
            if child is not None:
                self.revoke(child)
        self.by_id.pop(token.id, None)
        self.by_accessor.pop(token.accessor, None)
        if token.parent and token.parent in self.by_id:
            self.by_id[token.parent].children.discard(token.id)

    def revoke_namespace(self, ns_path: str) -> None:
        for token in list(self.by_id.values()):
            if token.namespace.startswith(ns_path):
                self.revoke(token)

    # -- answers ------------------------------------------------------------------------------

    def lookup_data(self, token: Token) -> dict:
        now = self.state.now()
        data = {
            "accessor": token.accessor,
            "creation_time": int(token.creation_time),
            "creation_ttl": token.creation_ttl,
            "display_name": token.display_name,
            "entity_id": token.entity_id,
            "expire_time": rfc3339(token.expire_at) if token.expire_at is not None else None,
            "explicit_max_ttl": token.explicit_max_ttl,
            "id": token.id,
            "issue_time": rfc3339(token.creation_time),
            "meta": token.meta,
            "num_uses": token.num_uses,
            "orphan": token.orphan,
            "path": token.path,
            "policies": token.policies,
            "renewable": token.renewable,
            "ttl": token.ttl_left(now),
            "type": "service",
        }
        if token.period:
            data["period"] = token.period
        if token.last_renewal is not None:
            data["last_renewal"] = rfc3339(token.last_renewal)
            data["last_renewal_time"] = int(token.last_renewal)
        # OpenBao 2.7 names no namespace_path for a root-namespace token
        if self.state.edition.namespaces and (self.state.edition.name != "openbao" or token.namespace):
            data["namespace_path"] = token.namespace
        return data

    @staticmethod
    def auth_block(token: Token, lease_duration: int) -> dict:
        return {
            "client_token": token.id,
            "accessor": token.accessor,
            "policies": token.policies,
            "token_policies": token.token_policies,
            "metadata": token.meta,
            "lease_duration": lease_duration,
            "renewable": token.renewable,
            "entity_id": token.entity_id,
            "token_type": "service",
            "orphan": token.orphan,
            "mfa_requirement": None,
            "num_uses": token.num_uses,
        }

    # -- renewal ------------------------------------------------------------------------------

    def renew(self, token: Token, increment: int) -> Response:
        if not token.renewable or token.expire_at is None:
            raise errors.bad_request("lease is not renewable")
        ns = self.state.namespaces.get(token.namespace)
        backend_ttl, backend_max, period = token.backend_ttl, token.backend_max_ttl, token.period
        mount_default, mount_max = SYSTEM_DEFAULT_TTL, SYSTEM_MAX_TTL
        if token.auth_mount_accessor and ns is not None:
            mount = next((m for m in ns.auth.values() if m.accessor == token.auth_mount_accessor), None)
            if mount is None:
                raise errors.bad_request("no auth method is mounted for this token any more")
            mount_default, mount_max = mount.effective_default_ttl(), mount.effective_max_ttl()
            backend_ttl, backend_max, period = mount.backend.renew_limits(token)
        now = self.state.now()
        ttl, warnings = calculate_ttl(now, token.creation_time, increment, backend_ttl, period,
                                      backend_max, token.explicit_max_ttl, mount_default, mount_max)
        token.expire_at = now + ttl
        token.last_renewal = now
        return Response(auth=self.auth_block(token, ttl), warnings=warnings or None)


class TokenBackend:
    """Routes of the token auth method mounted at auth/token/ in every namespace."""

    def __init__(self, state: State):
        self.state = state
        self.routes = [
            Route(r"create", {"update": self.create}),
            Route(r"create-orphan", {"update": self.create_orphan}),
            Route(r"lookup", {"update": self.lookup, "read": self.lookup}),
            Route(r"lookup-self", {"read": self.lookup_self, "update": self.lookup_self}),
            Route(r"lookup-accessor", {"update": self.lookup_accessor}),
            Route(r"renew", {"update": self.renew}),
            Route(r"renew-self", {"update": self.renew_self}),
            Route(r"revoke", {"update": self.revoke}),
            Route(r"revoke-self", {"update": self.revoke_self}),
            Route(r"revoke-accessor", {"update": self.revoke_accessor}),
            Route(r"accessors/?", {"list": self.list_accessors}, sudo=True),
        ]

    @property
    def store(self) -> TokenStore:
        return self.state.tokens

    def _create(self, req: Request, orphan: bool) -> Response:
        parent: Token = req.token
        d = req.data
        requested = [p.lower() for p in parse_str_list(d.get("policies"), "policies")]
        no_default = parse_bool(d.get("no_default_policy"), "no_default_policy")
        if not requested:
            requested = [p for p in parent.token_policies if p != "default" or not no_default]
        if not parent.is_root:
            if "root" in requested or not set(requested) <= set(parent.policies) | {"default"}:
                raise errors.bad_request("child policies must be subset of parent's policies")
        policies = sorted(set(requested))
        if "root" not in policies and not no_default and "default" not in policies:
            policies = sorted(policies + ["default"])
        if parse_bool(d.get("no_parent"), "no_parent"):
            if not parent.is_root:
                raise errors.bad_request("root or sudo privileges required to create orphan token")
            orphan = True
        ns = req.namespace
        mount = ns.auth["token/"]
        ttl_req = parse_duration(d.get("ttl"), "ttl")
        explicit_max = parse_duration(d.get("explicit_max_ttl"), "explicit_max_ttl")
        period = parse_duration(d.get("period"), "period")
        now = self.state.now()
        is_root_token = policies == ["root"]
        warnings: list[str] = []
        if is_root_token and not ttl_req and not period and not explicit_max:
            ttl, expire_at = 0, None
        else:
            ttl, warnings = calculate_ttl(now, now, 0, ttl_req, period, 0, explicit_max,
                                          mount.effective_default_ttl(), mount.effective_max_ttl())
            expire_at = now + ttl
        token_id, accessor = self.store.new_ids(ns.path)
        if d.get("id") and parent.is_root:
            token_id = parse_str(d.get("id"), "id")
        meta = d.get("meta") if isinstance(d.get("meta"), dict) else None
        display = parse_str(d.get("display_name"), "display_name") or ""
        token = self.store.add(Token(
            id=token_id, accessor=accessor, namespace=ns.path, policies=policies,
            token_policies=policies, display_name="token" + ("-" + display if display else ""),
            path="auth/token/create" + ("-orphan" if orphan else ""), creation_time=now,
            creation_ttl=ttl, expire_at=expire_at, meta=meta, explicit_max_ttl=explicit_max,
            period=period, num_uses=parse_int(d.get("num_uses"), "num_uses"), orphan=orphan,
            renewable=parse_bool(d.get("renewable"), "renewable", True) and expire_at is not None,
            parent=None if orphan else parent.id, backend_ttl=ttl_req))
        return Response(auth=self.store.auth_block(token, ttl), warnings=warnings or None)

    def create(self, req: Request) -> Response:
        return self._create(req, orphan=False)

    def create_orphan(self, req: Request) -> Response:
        return self._create(req, orphan=True)

    def _target(self, req: Request, field_name: str = "token") -> Token:
        token_id = parse_str(req.data.get(field_name), field_name)
        if not token_id:
            raise errors.bad_request("missing token to look up" if field_name == "token"
                                     else "missing accessor")
        token = self.store.lookup(token_id)
        if token is None:
            raise errors.plain(403, "bad token")
        return token

    def lookup(self, req: Request) -> Response:
        return Response(data=self.store.lookup_data(self._target(req)))

    def lookup_self(self, req: Request) -> Response:
        return Response(data=self.store.lookup_data(req.token))

    def lookup_accessor(self, req: Request) -> Response:
        accessor = parse_str(req.data.get("accessor"), "accessor")
        token = self.store.by_accessor.get(accessor)
        if token is None or self.store.lookup(token.id) is None:
            raise errors.bad_request("invalid accessor")
        data = self.store.lookup_data(token)
        data["id"] = ""
        return Response(data=data)

    def renew(self, req: Request) -> Response:
        token = self._target(req)
        return self.store.renew(token, parse_duration(req.data.get("increment"), "increment"))

    def renew_self(self, req: Request) -> Response:
        return self.store.renew(req.token, parse_duration(req.data.get("increment"), "increment"))

    def revoke(self, req: Request) -> None:
        token_id = parse_str(req.data.get("token"), "token")
        if not token_id:
            raise errors.bad_request("missing token to revoke")
        token = self.store.by_id.get(token_id)
        if token is not None:
            self.store.revoke(token)
        return None

    def revoke_self(self, req: Request) -> None:
        self.store.revoke(req.token)
        return None

    def revoke_accessor(self, req: Request) -> None:
        accessor = parse_str(req.data.get("accessor"), "accessor")
        token = self.store.by_accessor.get(accessor)
        if token is None:
            raise errors.bad_request("invalid accessor")
        self.store.revoke(token)
        return None

    def list_accessors(self, req: Request) -> Response:
        keys = sorted(t.accessor for t in self.store.by_id.values() if t.namespace == req.namespace.path)
        return Response(data={"keys": keys})
