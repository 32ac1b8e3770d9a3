"""File audit devices in the shape of Vault's file audit log, and the sys/audit* endpoints.

One JSON object per line: a ``request`` entry before each logical request is handled and a
``response`` entry after it. Every string value in request and response data, and the client
token and accessor, is replaced by ``hmac-sha256:<hex>`` keyed with the device's random salt.
``X-Correlation-Id`` is recorded unhashed under ``request.headers``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from typing import Any, Optional

from . import errors
from .routing import Request, Response, Route
from .values import parse_str, rfc3339

# Request headers recorded in the audit log, unhashed (lower-case names).
AUDITED_HEADERS = ("x-correlation-id",)


class FileAuditDevice:
    def __init__(self, path: str, file_path: str, description: str = ""):
        self.path = path
        self.file_path = file_path
        self.description = description
        self.salt = os.urandom(32)
        self.lock = threading.Lock()
        if file_path == "stdout":
            self.stream = sys.stdout
        elif file_path == "discard":
            self.stream = None
        else:
            self.stream = open(file_path, "a", encoding="utf-8")

    def describe(self) -> dict:
        return {"type": "file", "description": self.description, "local": False, "path": self.path,
                "options": {"file_path": self.file_path}}

    def hash(self, value: str) -> str:
        digest = hmac.new(self.salt, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return "hmac-sha256:" + digest

    def hash_structure(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.hash(value)
        if isinstance(value, dict):
            return {k: self.hash_structure(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.hash_structure(v) for v in value]
        return value

    def write(self, entry: dict) -> None:
        if self.stream is None:
            return
        line = json.dumps(entry, separators=(",", ":"), sort_keys=False)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stdout:
            self.stream.close()
        self.stream = None


class AuditBroker:
    """Builds the entries for one logical request and hands them to every enabled device."""

    def __init__(self, devices: dict[str, FileAuditDevice]):
        self.devices = devices

    def _auth(self, dev: FileAuditDevice, token, allowed: Optional[bool]) -> dict:
        if token is None:
            auth: dict = {"token_type": "default"}
        else:
            auth = {
                "client_token": dev.hash(token.id),
                "accessor": dev.hash(token.accessor),
                "display_name": token.display_name,
                "policies": token.policies,
                "token_policies": token.token_policies,
                "metadata": token.meta,
                "entity_id": token.entity_id,
                "token_type": "service",
                "token_ttl": token.creation_ttl,
                "token_issue_time": rfc3339(token.creation_time),
            }
        if allowed is not None:
            auth["policy_results"] = {"allowed": allowed}
        return auth

    def _request(self, dev: FileAuditDevice, req, token) -> dict:
        mount = req.mount
        entry = {
            "id": req.request_id,
            "client_id": token.entity_id if token is not None else "",
            "operation": req.op,
            "mount_point": _mount_point(mount),
            "mount_type": mount.type if mount else "",
            "mount_accessor": mount.accessor if mount else "",
            "mount_running_version": mount.running_version() if mount else "",
            "mount_class": mount.mount_class() if mount else "",
            "namespace": {"id": req.namespace.id, "path": req.namespace.path}
            if req.namespace.path else {"id": "root"},
            "path": req.path,
            "remote_address": req.remote_addr,
            "remote_port": req.remote_port,
        }
        if token is not None:
            entry["client_token"] = dev.hash(token.id)
            entry["client_token_accessor"] = dev.hash(token.accessor)
        if req.data:
            entry["data"] = dev.hash_structure(req.data)
        headers = {name: [req.headers[name]] for name in AUDITED_HEADERS if name in req.headers}
        if headers:
            entry["headers"] = headers
        return entry

    def log_request(self, req, token, allowed: Optional[bool]) -> None:
        for dev in list(self.devices.values()):
            dev.write({
                "time": rfc3339(time.time()),
                "type": "request",
                "auth": self._auth(dev, token, allowed),
                "request": self._request(dev, req, token),
            })

    def log_response(self, req, token, allowed: Optional[bool], resp, error: Optional[str]) -> None:
        for dev in list(self.devices.values()):
            mount = req.mount
            response: dict = {
                "mount_point": _mount_point(mount),
                "mount_type": mount.type if mount else "",
                "mount_accessor": mount.accessor if mount else "",
                "mount_running_plugin_version": mount.running_version() if mount else "",
                "mount_class": mount.mount_class() if mount else "",
            }
            if resp is not None:
                if resp.data is not None:
                    response["data"] = dev.hash_structure(resp.data)
                if resp.auth is not None:
                    auth = dict(resp.auth)
                    auth["client_token"] = dev.hash(auth["client_token"])
                    auth["accessor"] = dev.hash(auth["accessor"])
                    response["auth"] = auth
                if resp.warnings:
                    response["warnings"] = resp.warnings
            entry = {
                "time": rfc3339(time.time()),
                "type": "response",
                "auth": self._auth(dev, token, allowed),
                "request": self._request(dev, req, token),
                "response": response,
            }
            if error:
                entry["error"] = error
            dev.write(entry)


def _mount_point(mount) -> str:
    if mount is None:
        return ""
    return ("auth/" if mount.is_auth else "") + mount.path


class AuditEndpoints:
    """sys/audit, sys/audit/<path> and sys/audit-hash/<path>."""

    def __init__(self, state):
        self.state = state
        self.routes = [
            Route(r"audit", {"read": self.list_audit}, sudo=True),
            Route(r"audit/(?P<path>.+)", {"update": self.enable_audit,
                                           "delete": self.disable_audit}, sudo=True),
            Route(r"audit-hash/(?P<path>.+)", {"update": self.audit_hash}),
        ]

    def list_audit(self, req: Request) -> Response:
        data = {path: dev.describe() for path, dev in sorted(self.state.audit_devices.items())}
        return Response(data=data, top_level=True)

    def enable_audit(self, req: Request) -> None:
        path = _device_path(req.param("path"))
        if parse_str(req.data.get("type"), "type") != "file":
            raise errors.bad_request(f"unknown backend type: {req.data.get('type')}")
        options = req.data.get("options")
        file_path = (options.get("file_path") or options.get("path")) if isinstance(options, dict) else None
        if not file_path:
            raise errors.bad_request("file_path is required")
        if path in self.state.audit_devices:
            raise errors.bad_request(f"path already in use: {path}")
        self.state.audit_devices[path] = FileAuditDevice(path, file_path,
                                                         parse_str(req.data.get("description"),
                                                                   "description"))
        return None

    def disable_audit(self, req: Request) -> None:
        device = self.state.audit_devices.pop(_device_path(req.param("path")), None)
        if device is not None:
            device.close()
        return None

    def audit_hash(self, req: Request) -> Response:
        device = self.state.audit_devices.get(_device_path(req.param("path")))
        if device is None:
            raise errors.bad_request("unknown audit backend")
        value = parse_str(req.data.get("input"), "input")
        return Response(data={"hash": device.hash(value)}, top_level=True)


def _device_path(raw: str) -> str:
    path = raw.strip("/")
    return path + "/" if path else ""
