"""The logical request pipeline, in Vault's order: seal check, namespace, mount and route
lookup, token check, ACL (with the existence check for writes), audit, handler, envelope."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Optional

from . import errors
from .audit import AuditBroker
from .errors import VaultError
from .routing import METHOD_OPS, Request, Response, Route, find_route
from .state import Mount, Namespace, State


@dataclass
class Answer:
    """What the HTTP layer writes: a status, an optional JSON body, extra headers."""

    status: int
    body: Optional[dict] = None
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(err: VaultError) -> Answer:
    body = err.body if err.body is not None else {"errors": err.errors}
    return Answer(err.status, body, dict(err.headers))


def parse_body(raw: bytes) -> dict:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.bad_request(f"failed to parse JSON input: {exc}")
    if not isinstance(value, dict):
        raise errors.bad_request("failed to parse JSON input: expected a JSON object")
    return value


class Core:
    def __init__(self, state: State):
        self.state = state
        self.audit = AuditBroker(state.audit_devices)

    # -- lookups ------------------------------------------------------------------------------

    @staticmethod
    def _longest(mounts: dict[str, Mount], path: str) -> tuple[Optional[Mount], str]:
        best = None
        for prefix, mount in mounts.items():
            if (path.startswith(prefix) or path + "/" == prefix) and \
                    (best is None or len(prefix) > len(best.path)):
                best = mount
        if best is None:
            return None, ""
        return best, path[len(best.path):]

    def resolve_mount(self, ns: Namespace, path: str) -> tuple[Optional[Mount], str]:
        if path.startswith("auth/"):
            return self._longest(ns.auth, path[len("auth/"):])
        return self._longest(ns.mounts, path)

    # -- the pipeline -------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes, remote: tuple[str, int]) -> Answer:
        try:
            return self._handle(method, path, query, headers, body, remote)
        except VaultError as err:
            return error_answer(err)

    def _handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                body: bytes, remote: tuple[str, int]) -> Answer:
        state = self.state
        op = METHOD_OPS.get(method)
        if op is None:
            raise errors.unsupported_operation()
        if op == "read" and query.get("list", "").lower() in ("true", "1"):
            op = "list"
        if state.sealed:
            raise errors.sealed()
        data = parse_body(body) if op in ("update", "delete", "patch") else {}
        if op in ("read", "list"):
            data = {k: v for k, v in query.items() if k != "list"}
        if op == "list" and not path.endswith("/"):
            path += "/"

        ns = state.resolve_namespace(headers.get("x-vault-namespace", ""))
        if ns is None:
            requested = headers.get("x-vault-namespace", "").strip("/")
            raise errors.no_handler(f"{requested}/{path}")

        mount, subpath = self.resolve_mount(ns, path)
        route: Optional[Route] = None
        match = None
        if mount is not None and mount.backend is not None:
            route, match = find_route(mount.backend.routes, subpath)

        req = Request(op=op, path=path, data=data, namespace=ns, mount=mount, subpath=subpath,
                      match=match, headers=headers, remote_addr=remote[0], remote_port=remote[1],
                      request_id=str(uuid.uuid4()))

        token = None
        allowed: Optional[bool] = None
        if not (route is not None and route.unauth):
            try:
                token = self._authenticate(req, headers)
            except VaultError as err:
                self.audit.log_request(req, None, False)
                self.audit.log_response(req, None, False, None, err.message())
                raise
            req.token = token
            if op == "update" and route is not None and route.existence is not None:
                req.op = "update" if route.existence(req) else "create"
            rules = state.acl_for(token, ns)
            acl_path = state.acl_path(token, ns, path)
            allowed = rules.allows(acl_path, req.op, sudo=route is not None and route.sudo)
            if not allowed:
                self.audit.log_request(req, token, allowed)
                err = errors.permission_denied()
                self.audit.log_response(req, token, allowed, None, err.message())
                raise err

        self.audit.log_request(req, token, allowed)
        try:
            resp = self._dispatch(req, mount, route, path, ns)
        except VaultError as err:
            self.audit.log_response(req, token, allowed, None, err.message())
            raise
        finally:
            if token is not None and token.revoke_after_use:
                state.tokens.revoke(token)
        self.audit.log_response(req, token, allowed, resp, None)
        return self._answer(req, resp, mount)

    def _authenticate(self, req: Request, headers: dict[str, str]):
        token_id = headers.get("x-vault-token", "")
        if not token_id:
            auth = headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                token_id = auth[len("bearer "):].strip()
        bare = self.state.edition.name == "openbao"
        if not token_id:
            raise errors.missing_token(bare)
        token = self.state.tokens.lookup(token_id)
        if token is None or not req.namespace.path.startswith(token.namespace):
            raise errors.invalid_token(bare)
        if token.num_uses > 0:
            token.num_uses -= 1
            if token.num_uses == 0:
                token.revoke_after_use = True
        return token

    @staticmethod
    def _dispatch(req: Request, mount: Optional[Mount], route: Optional[Route], path: str,
                  ns: Namespace) -> Optional[Response]:
        if mount is None:
            raise errors.no_handler(ns.path + path)
        if route is None:
            raise errors.unsupported_path()
        handler = route.handlers.get("update" if req.op == "create" else req.op)
        if handler is None:
            raise errors.unsupported_operation()
        return handler(req)

    def _answer(self, req: Request, resp: Optional[Response], mount: Optional[Mount]) -> Answer:
        if resp is None:
            if req.op in ("read", "list"):
                return Answer(404, {"errors": []})
            return Answer(204)
        if resp.raw is not None:
            return Answer(resp.status, resp.raw)
        body = {
            "request_id": req.request_id,
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": resp.data,
            "wrap_info": None,
            "warnings": resp.warnings,
            "auth": resp.auth,
        }
        if self.state.edition.name != "openbao":  # OpenBao 2.7 answers no mount_type
            body["mount_type"] = mount.type if mount else ""
        if resp.top_level and resp.data:
            for key, value in resp.data.items():
                body.setdefault(key, value)
        return Answer(resp.status, body)
