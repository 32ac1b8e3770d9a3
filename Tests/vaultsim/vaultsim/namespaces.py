"""sys/namespaces: create, read, list and delete namespaces (Enterprise and OpenBao editions;
Community Edition answers unsupported path)."""

from __future__ import annotations

from typing import Optional

from . import errors
from .routing import Request, Response, Route
from .state import State

RESERVED_NAMESPACES = {"root", "sys", "audit", "auth", "cubbyhole", "identity"}


class NamespaceEndpoints:
    def __init__(self, state: State):
        self.state = state
        self.routes = [
            Route(r"namespaces/?", {"list": self.list_namespaces}),
            Route(r"namespaces/(?P<ns>.+)", {"read": self.read_namespace,
                                              "update": self.create_namespace,
                                              "delete": self.delete_namespace}),
        ]

    def _namespaces_enabled(self) -> None:
        if not self.state.edition.namespaces:
            raise errors.unsupported_path()

    def _child_path(self, req: Request) -> str:
        name = req.param("ns").strip("/")
        return req.namespace.path + name + "/"

    def list_namespaces(self, req: Request) -> Optional[Response]:
        self._namespaces_enabled()
        base = req.namespace.path
        children = {}
        for path, ns in self.state.namespaces.items():
            rest = path[len(base):]
            if path.startswith(base) and rest and rest.count("/") == 1:
                children[rest] = ns.describe()
        if not children:
            return None
        return Response(data={"keys": sorted(children), "key_info": children})

    def read_namespace(self, req: Request) -> Optional[Response]:
        self._namespaces_enabled()
        ns = self.state.namespaces.get(self._child_path(req))
        return Response(data=ns.describe()) if ns else None

    def create_namespace(self, req: Request) -> Response:
        self._namespaces_enabled()
        full = self._child_path(req)
        name = req.param("ns").strip("/")
        if not name:
            raise errors.bad_request("namespace path cannot be empty")
        for segment in name.split("/"):
            if segment.lower() in RESERVED_NAMESPACES or not segment:
                raise errors.bad_request(f'"{segment}" is a reserved path and cannot be used as a '
                                         f"namespace name")
        parent = full[:-1].rsplit("/", 1)[0] + "/" if "/" in full[:-1] else ""
        if parent not in self.state.namespaces:
            raise errors.bad_request(f'parent namespace "{parent}" does not exist')
        ns = self.state.namespaces.get(full)
        if ns is None:
            ns = self.state.new_namespace(full)
            metadata = req.data.get("custom_metadata")
            if isinstance(metadata, dict):
                ns.custom_metadata = {str(k): str(v) for k, v in metadata.items()}
        return Response(data=ns.describe())

    def delete_namespace(self, req: Request) -> None:
        self._namespaces_enabled()
        full = self._child_path(req)
        for path in [p for p in self.state.namespaces if p.startswith(full)]:
            del self.state.namespaces[path]
        self.state.tokens.revoke_namespace(full)
        return None
