"""Transit key model: the key types, a named key with its versions, and the simulator's own
backup format (base64 of JSON; it restores only into vaultsim)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

# type -> (key bytes, AEAD class); types without an AEAD are stored but cannot encrypt here.
SYMMETRIC = {
    "aes128-gcm96": (16, AESGCM),
    "aes256-gcm96": (32, AESGCM),
    "chacha20-poly1305": (32, ChaCha20Poly1305),
}
SIGNING = {"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096"}
KEY_TYPES = set(SYMMETRIC) | SIGNING | {"hmac"}


@dataclass
class KeyVersion:
    key: bytes
    hmac_key: bytes
    creation_time: float


@dataclass
class TransitKey:
    name: str
    type: str
    derived: bool = False
    convergent: bool = False
    exportable: bool = False
    allow_plaintext_backup: bool = False
    deletion_allowed: bool = False
    min_decryption_version: int = 1
    min_encryption_version: int = 0
    min_available_version: int = 0
    latest_version: int = 0
    auto_rotate_period: int = 0
    versions: dict[int, KeyVersion] = field(default_factory=dict)

    def rotate(self, now: float) -> None:
        size = SYMMETRIC.get(self.type, (32, None))[0]
        self.latest_version += 1
        self.versions[self.latest_version] = KeyVersion(os.urandom(size), os.urandom(32), now)

    def describe(self) -> dict:
        symmetric = self.type in SYMMETRIC
        data = {
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "auto_rotate_period": self.auto_rotate_period,
            "deletion_allowed": self.deletion_allowed,
            "derived": self.derived,
            "exportable": self.exportable,
            "imported_key": False,
            "keys": {str(v): int(kv.creation_time) for v, kv in sorted(self.versions.items())
                     if v >= self.min_decryption_version},
            "latest_version": self.latest_version,
            "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "name": self.name,
            "supports_decryption": symmetric or self.type.startswith("rsa-"),
            "supports_derivation": symmetric or self.type == "ed25519",
            "supports_encryption": symmetric or self.type.startswith("rsa-"),
            "supports_signing": self.type in SIGNING,
            "type": self.type,
        }
        if self.derived:
            data["kdf"] = "hkdf_sha256"
            data["convergent_encryption"] = self.convergent
            if self.convergent:
                data["convergent_encryption_version"] = 3
        return data

    # -- serialisation for backup/restore (the simulator's own format) --------------------------

    def to_backup(self, now: float) -> dict:
        fields = {k: v for k, v in self.__dict__.items() if k != "versions"}
        fields["versions"] = {
            str(v): {"key": base64.b64encode(kv.key).decode(),
                     "hmac_key": base64.b64encode(kv.hmac_key).decode(),
                     "creation_time": kv.creation_time}
            for v, kv in self.versions.items()}
        return {"policy": fields, "backup_info": {"time": now, "version": self.latest_version}}

    @classmethod
    def from_backup(cls, doc: dict) -> "TransitKey":
        fields = dict(doc["policy"])
        versions = fields.pop("versions")
        key = cls(**fields)
        key.versions = {int(v): KeyVersion(base64.b64decode(e["key"]), base64.b64decode(e["hmac_key"]),
                                           float(e["creation_time"]))
                        for v, e in versions.items()}
        return key
