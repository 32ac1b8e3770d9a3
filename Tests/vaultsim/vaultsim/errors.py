"""Vault error answers: one exception type, and the status codes decided in one place.

Vault has two families of error text:

* messages a backend returns as an error *response* (``logical.ErrorResponse``) reach the client
  as plain strings, e.g. ``{"errors":["encryption key not found"]}``;
* errors returned as Go ``error`` values pass through a multierror on the way out, so the client
  sees them wrapped: ``{"errors":["1 error occurred:\\n\\t* permission denied\\n\\n"]}``.

``plain`` and ``wrapped`` build those two shapes; the named constructors below say which one
Vault uses for each condition.
"""

from __future__ import annotations


def wrap(*messages: str) -> str:
    """Render messages the way hashicorp/go-multierror does."""
    if len(messages) == 1:
        head = "1 error occurred:"
    else:
        head = f"{len(messages)} errors occurred:"
    return head + "\n" + "".join(f"\t* {m}\n" for m in messages) + "\n"


class VaultError(Exception):
    """An error answer: an HTTP status and the strings of the ``errors`` array.

    ``body`` replaces the ``{"errors": [...]}`` body when Vault answers an error status with a
    full response envelope (a transit batch with failed items answers 400 with its results).
    """

    def __init__(self, status: int, errors: list[str], body: dict | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(errors[0] if errors else f"HTTP {status}")
        self.status = status
        self.errors = errors
        self.body = body
        self.headers = headers or {}

    def message(self) -> str:
        """The text recorded in the audit log's ``error`` field."""
        return "; ".join(self.errors)


def plain(status: int, message: str) -> VaultError:
    return VaultError(status, [message])


def wrapped(status: int, *messages: str) -> VaultError:
    return VaultError(status, [wrap(*messages)])


def bad_request(message: str) -> VaultError:
    """A backend's error response: 400 with the message as is."""
    return plain(400, message)


def internal(message: str) -> VaultError:
    """A Go error returned by a backend: 500, wrapped."""
    return wrapped(500, message)


def permission_denied() -> VaultError:
    """Policy denial, missing token, or a locked-out login."""
    return wrapped(403, "permission denied")


def invalid_token(bare: bool = False) -> VaultError:
    """Unknown, revoked or expired token (Vault 1.17+ wording); `bare`: OpenBao 2.7's answer,
    one unwrapped "permission denied" with no "invalid token"."""
    if bare:
        return plain(403, "permission denied")
    return wrapped(403, "permission denied", "invalid token")


def missing_token(bare: bool = False) -> VaultError:
    """A request without a token: Vault wraps "permission denied", OpenBao 2.7 does not."""
    return plain(403, "permission denied") if bare else permission_denied()


def unsupported_path() -> VaultError:
    return wrapped(404, "unsupported path")


def unsupported_operation() -> VaultError:
    return wrapped(405, "unsupported operation")


def no_handler(path: str) -> VaultError:
    """No mount serves this path (the router's answer)."""
    return plain(404, f'no handler for route "{path}". route entry not found.')


def not_found_empty() -> VaultError:
    """A read that finds nothing: 404 with an empty errors array."""
    return VaultError(404, [])


def sealed() -> VaultError:
    return plain(503, "Vault is sealed")
