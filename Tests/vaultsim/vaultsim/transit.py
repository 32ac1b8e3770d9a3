"""The Transit secrets engine: named keys with versions, encrypt/decrypt/rewrap, key
configuration, export, backup and restore.

Symmetric types are real AEADs from `cryptography`: AES-GCM (96-bit nonce) and ChaCha20-Poly1305.
Ciphertext is ``vault:v<N>:`` + standard base64 of ``nonce(12) || ciphertext || tag(16)``.
Derived keys are HKDF-SHA256(key, info=context).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from typing import Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import errors, gobase64
from .routing import NAME, Request, Response, Route
from .state import Mount, State
from .transit_keys import KEY_TYPES, SYMMETRIC, TransitKey
from .values import parse_bool, parse_duration, parse_int, parse_str

NONCE_SIZE = 12          # GCM standard nonce, also ChaCha20-Poly1305's
MIN_AUTO_ROTATE = 3600   # Vault: auto_rotate_period is 0 (off) or at least one hour

ERR_TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"
DERIVATION_CONTEXT_MISSING = (
    "missing 'context' for key derivation; the key was created using a derived key, which means "
    "additional, per-request information must be included in order to perform operations with the key")


class _ItemError(Exception):
    """A per-item user error (reported in batch_results, or as a 400 for single requests)."""


def _b64_field(value, what: str) -> bytes:
    try:
        return gobase64.decode(parse_str(value, what))
    except gobase64.Base64Error as exc:
        raise _ItemError(str(exc))


def _parse_version(text: str) -> int:
    """Go's strconv.Atoi: optional sign, decimal digits, 64-bit range."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise _ItemError("invalid ciphertext: version number could not be decoded")
    value = int(text)
    if not -(2 ** 63) <= value < 2 ** 63:
        raise _ItemError("invalid ciphertext: version number could not be decoded")
    return value


class TransitBackend:
    def __init__(self, state: State, mount: Mount):
        self.state = state
        self.mount = mount
        self.keys: dict[str, TransitKey] = {}
        key = rf"(?P<name>{NAME})"
        self.routes = [
            Route(r"keys/?", {"list": self.list_keys}),
            Route(rf"keys/{key}", {"read": self.read_key, "update": self.create_key,
                                   "delete": self.delete_key}),
            Route(rf"keys/{key}/config", {"update": self.configure_key}),
            Route(rf"keys/{key}/rotate", {"update": self.rotate_key}),
            Route(rf"keys/{key}/trim", {"update": self.trim_key}),
            Route(rf"encrypt/{key}", {"update": self.encrypt}, existence=self.key_exists),
            Route(rf"decrypt/{key}", {"update": self.decrypt}),
            Route(rf"rewrap/{key}", {"update": self.rewrap}),
            Route(rf"export/(?P<kind>encryption-key|signing-key|hmac-key|public-key)/{key}"
                  r"(?:/(?P<version>[^/]+))?", {"read": self.export_key}),
            Route(rf"backup/{key}", {"read": self.backup_key}),
            Route(rf"restore(?:/{key})?", {"update": self.restore_key}),
        ]

    def key_exists(self, req: Request) -> bool:
        return req.param("name") in self.keys

    def _key(self, req: Request) -> Optional[TransitKey]:
        return self.keys.get(req.param("name"))

    # -- key management -----------------------------------------------------------------------

    def list_keys(self, req: Request) -> Optional[Response]:
        if not self.keys:
            return None
        return Response(data={"keys": sorted(self.keys)})

    def read_key(self, req: Request) -> Optional[Response]:
        key = self._key(req)
        return Response(data=key.describe()) if key else None

    def _new_key(self, name: str, d: dict, key_type: str | None = None,
                 derived: bool | None = None) -> TransitKey:
        key_type = key_type or parse_str(d.get("type"), "type") or "aes256-gcm96"
        if key_type not in KEY_TYPES:
            raise errors.bad_request(f'unknown key type "{key_type}"')
        if derived is None:
            derived = parse_bool(d.get("derived"), "derived")
        convergent = parse_bool(d.get("convergent_encryption"), "convergent_encryption")
        if convergent and not derived:
            raise errors.bad_request("convergent encryption requires derivation to be enabled")
        if derived and key_type not in SYMMETRIC and key_type != "ed25519":
            raise errors.bad_request(f"key derivation and convergent encryption not supported for "
                                     f"keys of type {key_type}")
        period = parse_duration(d.get("auto_rotate_period"), "auto_rotate_period")
        if period != 0 and period < MIN_AUTO_ROTATE:
            raise errors.bad_request("auto rotate period must be 0 to disable or at least an hour")
        key = TransitKey(
            name=name, type=key_type, derived=derived, convergent=convergent,
            exportable=parse_bool(d.get("exportable"), "exportable"),
            allow_plaintext_backup=parse_bool(d.get("allow_plaintext_backup"),
                                              "allow_plaintext_backup"),
            auto_rotate_period=period)
        key.rotate(self.state.now())
        self.keys[name] = key
        return key

    def create_key(self, req: Request) -> Response:
        name = req.param("name")
        key = self.keys.get(name)
        if key is None:
            key = self._new_key(name, req.data)
        return Response(data=key.describe())

    def rotate_key(self, req: Request) -> Response:
        key = self._key(req)
        if key is None:
            raise errors.bad_request("key not found")
        key.rotate(self.state.now())
        return Response(data=key.describe())

    def configure_key(self, req: Request) -> Response:
        key = self._key(req)
        if key is None:
            raise errors.bad_request("no existing key named " + req.param("name") + " could be found")
        d = req.data
        warnings = []
        min_dec, min_enc = key.min_decryption_version, key.min_encryption_version
        if "min_decryption_version" in d:
            value = parse_int(d["min_decryption_version"], "min_decryption_version")
            if value < 0:
                raise errors.bad_request("min decryption version cannot be negative")
            if value == 0:
                value = 1
                warnings.append("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
            if value != key.min_decryption_version and value > key.latest_version:
                raise errors.bad_request(f"cannot set min decryption version of {value}, "
                                         f"latest key version is {key.latest_version}")
            min_dec = value
        if "min_encryption_version" in d:
            value = parse_int(d["min_encryption_version"], "min_encryption_version")
            if value < 0:
                raise errors.bad_request("min encryption version cannot be negative")
            if value != key.min_encryption_version and value > key.latest_version:
                raise errors.bad_request(f"cannot set min encryption version of {value}, "
                                         f"latest key version is {key.latest_version}")
            min_enc = value
        if min_enc > 0 and min_enc < min_dec:
            raise errors.bad_request(
                f"cannot set min encryption/decryption values; min encryption version of {min_enc} "
                f"must be greater than or equal to min decryption version of {min_dec}")
        if min_dec < key.min_available_version:
            raise errors.bad_request(f"cannot set min decryption version of {min_dec}, "
                                     f"min available version is {key.min_available_version}")
        exportable, backup = key.exportable, key.allow_plaintext_backup
        if "exportable" in d:
            exportable = parse_bool(d["exportable"], "exportable")
            if key.exportable and not exportable:
                raise errors.bad_request("exportability cannot be disabled after enabling")
        if "allow_plaintext_backup" in d:
            backup = parse_bool(d["allow_plaintext_backup"], "allow_plaintext_backup")
            if key.allow_plaintext_backup and not backup:
                raise errors.bad_request("plaintext backups cannot be disabled after enabling")
        period = key.auto_rotate_period
        if "auto_rotate_period" in d:
            period = parse_duration(d["auto_rotate_period"], "auto_rotate_period")
            if period != 0 and period < MIN_AUTO_ROTATE:
                raise errors.bad_request("auto rotate period must be 0 to disable or at least an hour")
        if "deletion_allowed" in d:
            key.deletion_allowed = parse_bool(d["deletion_allowed"], "deletion_allowed")
        key.min_decryption_version, key.min_encryption_version = min_dec, min_enc
        key.exportable, key.allow_plaintext_backup = exportable, backup
        key.auto_rotate_period = period
        return Response(data=key.describe(), warnings=warnings or None)

    def trim_key(self, req: Request) -> Response:
        key = self._key(req)
        if key is None:
            raise errors.bad_request("invalid key name " + req.param("name"))
        value = parse_int(req.data.get("min_available_version"), "min_available_version")
        if value <= 0:
            raise errors.bad_request("minimum available version should be positive")
        if value < key.min_available_version:
            raise errors.bad_request("minimum available version cannot be decremented")
        if value > key.min_decryption_version:
            raise errors.bad_request("cannot set minimum available version to be greater than "
                                     "minimum decryption version")
        if key.min_encryption_version > 0 and value > key.min_encryption_version:
            raise errors.bad_request("cannot set minimum available version to be greater than "
                                     "minimum encryption version")
        key.min_available_version = value
        for version in [v for v in key.versions if v < value]:
            del key.versions[version]
        return Response(data=key.describe())

    def delete_key(self, req: Request) -> None:
        name = req.param("name")
        key = self.keys.get(name)
        if key is None:
            raise errors.bad_request(f"error deleting policy {name}: could not delete policy; not found")
        if not key.deletion_allowed:
            raise errors.bad_request(f"error deleting policy {name}: deletion is not allowed for this policy")
        del self.keys[name]
        return None

    # -- cryptography -------------------------------------------------------------------------

    def _aead(self, key: TransitKey, version: int, context: bytes):
        if key.type.startswith("rsa-"):
            raise _ItemError(f"vaultsim does not simulate RSA encryption (key type {key.type})")
        if key.type not in SYMMETRIC:
            raise _ItemError(f"key type {key.type} does not support encryption")
        material = key.versions[version].key
        if key.derived:
            if not context:
                raise _ItemError(DERIVATION_CONTEXT_MISSING)
            material = HKDF(algorithm=hashes.SHA256(), length=len(material), salt=None,
                            info=context).derive(material)
        return SYMMETRIC[key.type][1](material), material

    def _encrypt_one(self, key: TransitKey, item: dict) -> dict:
        plaintext = _b64_field(item.get("plaintext"), "plaintext")
        context = _b64_field(item.get("context"), "context")
        aad = _b64_field(item.get("associated_data"), "associated_data")
        version = parse_int(item.get("key_version"), "key_version")
        if version == 0:
            version = key.latest_version
        elif version < 0:
            raise _ItemError("requested version for encryption is negative")
        elif version > key.latest_version:
            raise _ItemError("requested version for encryption is higher than the latest key version")
        elif version < key.min_encryption_version:
            raise _ItemError("requested version for encryption is less than the minimum encryption "
                             "key version")
        if version not in key.versions:
            raise _ItemError("requested version for encryption is less than the minimum encryption "
                             "key version")
        aead, material = self._aead(key, version, context)
        if key.convergent:
            nonce = hmac.new(material, context + plaintext, hashlib.sha256).digest()[:NONCE_SIZE]
        else:
            nonce = os.urandom(NONCE_SIZE)
        sealed = aead.encrypt(nonce, plaintext, aad or None)
        text = f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()
        return {"ciphertext": text, "key_version": version}

    def _decrypt_one(self, key: TransitKey, item: dict) -> bytes:
        value = parse_str(item.get("ciphertext"), "ciphertext")
        context = _b64_field(item.get("context"), "context")
        aad = _b64_field(item.get("associated_data"), "associated_data")
        if key.type not in SYMMETRIC and not key.type.startswith("rsa-"):
            raise _ItemError(f"message decryption not supported for key type {key.type}")
        if not value.startswith("vault:v"):
            raise _ItemError("invalid ciphertext: no prefix")
        fields = value[len("vault:v"):].split(":", 1)
        if len(fields) != 2:
            raise _ItemError("invalid ciphertext: wrong number of fields")
        version = _parse_version(fields[0])
        if version == 0:
            version = 1  # ciphertexts from before key versioning
        if version > key.latest_version:
            raise _ItemError("invalid ciphertext: version is too new")
        if key.min_decryption_version > 0 and version < key.min_decryption_version:
            raise _ItemError(ERR_TOO_OLD)
        try:
            blob = gobase64.decode(fields[1])
        except gobase64.Base64Error:
            raise _ItemError("invalid ciphertext: could not decode base64")
        if version not in key.versions:
            raise _ItemError(ERR_TOO_OLD)
        aead, _ = self._aead(key, version, context)
        if len(blob) < NONCE_SIZE:
            raise _ItemError("invalid ciphertext length")
        try:
            return aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad or None)
        except InvalidTag:
            raise _ItemError("cipher: message authentication failed")

    @staticmethod
    def _batch(req: Request, single_fields: tuple[str, ...], missing: str) -> tuple[list[dict], bool]:
        raw = req.data.get("batch_input")
        if raw is not None:
            if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
                raise errors.bad_request("failed to parse batch input: expected a list of objects")
            if not raw:
                raise errors.bad_request("missing batch input to process")
            return raw, True
        first = single_fields[0]
        # An absent plaintext is an error, an empty one is encrypted; an empty ciphertext is absent.
        if req.data.get(first) is None or (first == "ciphertext" and not req.data[first]):
            raise errors.bad_request(missing)
        return [{k: req.data[k] for k in single_fields if k in req.data}], False

    def _respond(self, req: Request, results: list[dict], batch: bool) -> Response:
        failed = [r for r in results if "error" in r]
        if not batch:
            if failed:
                raise errors.bad_request(failed[0]["error"])
            result = dict(results[0])
            result.pop("reference", None)
            return Response(data=result)
        response = Response(data={"batch_results": results})
        if failed:
            status = parse_int(req.data.get("partial_failure_response_code"),
                               "partial_failure_response_code") or 400
            if len(failed) == len(results):
                status = 400
            response.status = status
        return response

    def encrypt(self, req: Request) -> Response:
        items, batch = self._batch(req, ("plaintext", "context", "key_version", "associated_data"),
                                   "missing plaintext to encrypt")
        name = req.param("name")
        key = self.keys.get(name)
        if key is None:
            if req.op != "create":
                raise errors.bad_request("encryption key not found")
            try:
                context = _b64_field(items[0].get("context"), "context")
            except _ItemError as exc:
                raise errors.bad_request(str(exc))
            key = self._new_key(name, req.data, derived=bool(context))
        results = []
        for item in items:
            try:
                result = self._encrypt_one(key, item)
            except _ItemError as exc:
                result = {"error": str(exc)}
            result["reference"] = parse_str(item.get("reference"), "reference")
            results.append(result)
        return self._respond(req, results, batch)

    def decrypt(self, req: Request) -> Response:
        items, batch = self._batch(req, ("ciphertext", "context", "associated_data"),
                                   "missing ciphertext to decrypt")
        key = self._key(req)
        if key is None:
            raise errors.bad_request("encryption key not found")
        results = []
        for item in items:
            try:
                result = {"plaintext": base64.b64encode(self._decrypt_one(key, item)).decode()}
            except _ItemError as exc:
                result = {"error": str(exc)}
            result["reference"] = parse_str(item.get("reference"), "reference")
            results.append(result)
        return self._respond(req, results, batch)

    def rewrap(self, req: Request) -> Response:
        items, batch = self._batch(req, ("ciphertext", "context", "key_version"),
                                   "missing ciphertext to rewrap")
        key = self._key(req)
        if key is None:
            raise errors.bad_request("encryption key not found")
        results = []
        for item in items:
            try:
                plain = self._decrypt_one(key, item)
                again = dict(item, plaintext=base64.b64encode(plain).decode())
                result = self._encrypt_one(key, again)
            except _ItemError as exc:
                result = {"error": str(exc)}
            result["reference"] = parse_str(item.get("reference"), "reference")
            results.append(result)
        return self._respond(req, results, batch)

    # -- export, backup, restore --------------------------------------------------------------

    def export_key(self, req: Request) -> Optional[Response]:
        key = self._key(req)
        if key is None:
            return None
        kind = req.param("kind")
        if kind != "public-key" and not key.exportable:
            raise errors.bad_request("private key material is not exportable")
        if kind == "encryption-key" and key.type not in SYMMETRIC:
            raise errors.bad_request("encryption key not supported for key type " + key.type)
        if kind in ("signing-key", "public-key"):
            raise errors.bad_request(f"{kind} export is not supported by vaultsim for key type {key.type}")
        selected = key.versions
        version_text = req.param("version")
        if version_text:
            if version_text == "latest":
                version = key.latest_version
            else:
                try:
                    version = int(version_text)
                except ValueError:
                    raise errors.bad_request(f"invalid key version: {version_text}")
            if version < key.min_decryption_version:
                raise errors.bad_request("version for export is below minimum decryption version")
            if version not in key.versions:
                raise errors.bad_request("version does not exist or cannot be found")
            selected = {version: key.versions[version]}
        field_name = "hmac_key" if kind == "hmac-key" else "key"
        exported = {str(v): base64.b64encode(getattr(kv, field_name)).decode()
                    for v, kv in sorted(selected.items()) if v >= key.min_decryption_version}
        return Response(data={"name": key.name, "type": key.type, "keys": exported})

    def backup_key(self, req: Request) -> Optional[Response]:
        key = self._key(req)
        if key is None:
            return None
        if not key.exportable:
            raise errors.internal("exporting is disallowed on the policy")
        if not key.allow_plaintext_backup:
            raise errors.internal("plaintext backup is disallowed on the policy")
        blob = json.dumps(key.to_backup(self.state.now())).encode()
        return Response(data={"backup": base64.b64encode(blob).decode()})

    def restore_key(self, req: Request) -> None:
        backup = parse_str(req.data.get("backup"), "backup")
        if not backup:
            raise errors.bad_request("'backup' must be supplied")
        force = parse_bool(req.data.get("force"), "force")
        try:
            doc = json.loads(base64.b64decode(backup, validate=True))
            key = TransitKey.from_backup(doc)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise errors.internal(f"failed to restore the key: {exc}")
        name = req.param("name") or key.name
        if name.startswith("."):
            raise errors.bad_request("key names cannot begin with a period")
        key.name = name
        if name in self.keys and not force:
            raise errors.internal(f'key "{name}" already exists')
        self.keys[name] = key
        return None
