"""The shapes shared by every backend: a route table entry, the logical request, the response."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# HTTP methods to logical operations. POST and PUT are both writes; Vault decides between
# `create` and `update` afterwards with the route's existence check.
METHOD_OPS = {
    "GET": "read",
    "HEAD": "read",
    "LIST": "list",
    "POST": "update",
    "PUT": "update",
    "DELETE": "delete",
    "PATCH": "patch",
}

Handler = Callable[["Request"], Optional["Response"]]


@dataclass
class Route:
    """A path pattern (relative to the mount) and the operations it serves.

    ``existence`` makes a write a ``create`` when it returns False (the resource is missing) and an
    ``update`` otherwise; without it every write needs ``update``, as in Vault.
    ``unauth`` routes need no token (logins); ``sudo`` routes also need the sudo capability.
    """

    pattern: str
    handlers: dict[str, Handler]
    existence: Optional[Callable[["Request"], bool]] = None
    unauth: bool = False
    sudo: bool = False
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern, re.ASCII)


@dataclass
class Request:
    op: str                      # read, list, update, delete, patch; create/update after the check
    path: str                    # the Vault path, relative to the request namespace
    data: dict[str, Any]
    namespace: Any               # state.Namespace
    mount: Any = None            # state.Mount
    subpath: str = ""
    match: Optional[re.Match] = None
    token: Any = None            # tokens.Token
    headers: dict[str, str] = field(default_factory=dict)
    remote_addr: str = ""
    remote_port: int = 0
    request_id: str = ""

    def param(self, name: str) -> str:
        return self.match.group(name) if self.match else ""


@dataclass
class Response:
    data: Optional[dict] = None
    auth: Optional[dict] = None
    warnings: Optional[list[str]] = None
    status: int = 200
    raw: Optional[dict] = None          # a body without the envelope (seal-status, unseal)
    top_level: bool = False             # copy data keys to the top level (old sys endpoints)


def find_route(routes: list[Route], subpath: str) -> tuple[Optional[Route], Optional[re.Match]]:
    for route in routes:
        m = route.regex.fullmatch(subpath)
        if m:
            return route, m
    return None, None


NAME = r"\w(?:[\w\-.]*\w)?"   # Vault's GenericNameRegex: word chars, '-' and '.', word char at both ends
