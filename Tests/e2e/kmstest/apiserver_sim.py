"""An apiserver-like KMS v2 client, written from ../shared/reference/kms-v2-contract.md.

It behaves like kube-apiserver's envelope/kmsv2 transformer with the KDF on (the default since 1.29):

- `poll()` calls Status and validates it as the apiserver does (healthz exactly "ok", version "v2" or
  "v2beta1" and never changing, key_id non-empty and at most 1024 bytes). When the key_id differs from
  the one of the current write seed, it Encrypts a fresh 32-byte seed with a fresh uid and validates
  the answer (ciphertext 1..1024 bytes, key_id equal to the Status key_id, annotation rules); a seed
  that fails validation is discarded ("failed to rotate DEK") and the old one is kept.
- `write(name, data)` derives a per-object DEK with HKDF-SHA256 expand-only (PRK = the seed, info =
  32 random bytes kept with the object), encrypts with AES-256-GCM (random 12-byte nonce, the storage
  path as associated data) and stores an "EncryptedObject": the data, the key_id, the encrypted seed
  and the annotations.
- `read(name)` decrypts the seed through the plugin (cached per encrypted seed, as the apiserver's
  cache does) and opens the object.

The store is a JSON file, so a new instance (a restarted apiserver) starts with an empty seed cache
and must Decrypt every distinct seed again.

`metrics_page()` renders what kube-apiserver's envelope metrics (k8s.io/apiserver
storage/value/encrypt/envelope/metrics) would show for this instance: key_id and apiserver id
hashed as `sha256:<hex of SHA-256>` (getHash, no salt),
`apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds` set at every Status call
and `apiserver_envelope_encryption_key_id_hash_total` counted per transformation.
"""
import base64
import hashlib
import json
import os
import re
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from . import kmsclient

MAX_KEY_ID_BYTES = 1024
MAX_CIPHERTEXT_BYTES = 1024
MAX_ANNOTATION_BYTES = 32 * 1024
SEED_BYTES = 32
INFO_BYTES = 32
NONCE_BYTES = 12
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ValidationError(Exception):
    """The plugin answered something kube-apiserver would refuse."""


def validate_key_id(key_id):
    if not key_id:
        raise ValidationError("key_id is empty")
    if len(key_id.encode()) > MAX_KEY_ID_BYTES:
        raise ValidationError("key_id is longer than 1024 bytes")


def validate_annotations(annotations):
    total = 0
    for key, value in annotations.items():
        labels = key.split(".")
        if "/" in key or len(labels) < 2 or not all(DNS_LABEL.match(label) for label in labels):
            raise ValidationError(f"annotation key {key!r} is not a fully qualified lowercase DNS name")
        total += len(key.encode()) + len(value)
    if total > MAX_ANNOTATION_BYTES:
        raise ValidationError("annotations exceed 32 KiB")


def key_id_hash(text):
    """kube-apiserver's label value for a key_id or apiserver id (envelope/metrics getHash)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest() if text else ""


def derive_dek(seed, info):
    """HKDF-SHA256 expand-only with the seed as PRK, as the apiserver's KDF mode does."""
    return HKDFExpand(algorithm=hashes.SHA256(), length=32, info=info).derive(seed)


class ApiServer:
    """One apiserver instance with its KMS provider and an object store on disk."""

    def __init__(self, socket_path, store_path, timeout=3.0):
        self.api = kmsclient.stubs()[0]
        self.client = kmsclient.client(socket_path)
        self.store_path = store_path
        self.timeout = timeout
        self.version = None
        self.write_seed = None  # (seed, key_id, encrypted seed, annotations)
        self.seed_cache = {}  # encrypted seed -> seed
        self.status_key_id = None
        self.rotations_refused = []
        self.decrypt_calls = 0
        self.encrypt_calls = 0
        self.apiserver_id = f"kube-apiserver-{uuid.uuid4()}"
        self.status_seen = {}  # key_id -> time of the last Status call that returned it
        self.key_id_uses = {}  # (transformation type, key_id) -> count

    # --- Status and seed rotation -------------------------------------------------------------

    def poll(self):
        """One Status call; rotates the write seed when the key_id changed. Returns the key_id."""
        status = self.client.Status(self.api.StatusRequest(), timeout=self.timeout)
        if status.healthz != "ok":
            raise ValidationError(f"healthz is {status.healthz!r}")
        if status.version not in ("v2", "v2beta1"):
            raise ValidationError(f"version is {status.version!r}")
        if self.version is not None and status.version != self.version:
            raise ValidationError("version changed")
        self.version = status.version
        validate_key_id(status.key_id)
        self.status_key_id = status.key_id
        self.status_seen[status.key_id] = time.time()
        if self.write_seed is None or self.write_seed[1] != status.key_id:
            try:
                self._rotate_seed(status.key_id)
            except ValidationError as error:
                self.rotations_refused.append(str(error))
        return status.key_id

    def _rotate_seed(self, status_key_id):
        seed = os.urandom(SEED_BYTES)
        self.encrypt_calls += 1
        answer = self.client.Encrypt(
            self.api.EncryptRequest(plaintext=seed, uid=str(uuid.uuid4())), timeout=self.timeout)
        if not 0 < len(answer.ciphertext) <= MAX_CIPHERTEXT_BYTES:
            raise ValidationError("ciphertext size out of range")
        validate_key_id(answer.key_id)
        if answer.key_id != status_key_id:
            raise ValidationError("failed to rotate DEK: Encrypt key_id differs from Status key_id")
        annotations = dict(answer.annotations)
        validate_annotations(annotations)
        self.write_seed = (seed, answer.key_id, bytes(answer.ciphertext), annotations)
        self.seed_cache[bytes(answer.ciphertext)] = seed

    # --- objects --------------------------------------------------------------------------------

    def _load(self):
        if not os.path.exists(self.store_path):
            return {}
        with open(self.store_path) as handle:
            return json.load(handle)

    def _save(self, store):
        tmp = self.store_path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(store, handle)
        os.replace(tmp, self.store_path)

    def write(self, name, data):
        """Encrypts and stores one object under the current write seed; returns its key_id."""
        if self.write_seed is None:
            raise ValidationError("no write seed: Status/Encrypt never succeeded")
        seed, key_id, encrypted_seed, annotations = self.write_seed
        info = os.urandom(INFO_BYTES)
        nonce = os.urandom(NONCE_BYTES)
        path = f"/registry/secrets/default/{name}".encode()
        sealed = AESGCM(derive_dek(seed, info)).encrypt(nonce, data, path)
        store = self._load()
        store[name] = {
            "data": base64.b64encode(info + nonce + sealed).decode(),
            "key_id": key_id,
            "encrypted_seed": base64.b64encode(encrypted_seed).decode(),
            "annotations": {k: base64.b64encode(v).decode() for k, v in annotations.items()},
        }
        self._save(store)
        self.key_id_uses[("to_storage", key_id)] = self.key_id_uses.get(("to_storage", key_id), 0) + 1
        return key_id

    def read(self, name):
        """Decrypts one stored object (Decrypt of its seed unless cached)."""
        record = self._load()[name]
        encrypted_seed = base64.b64decode(record["encrypted_seed"])
        seed = self.seed_cache.get(encrypted_seed)
        if seed is None:
            self.decrypt_calls += 1
            answer = self.client.Decrypt(
                self.api.DecryptRequest(
                    ciphertext=encrypted_seed, key_id=record["key_id"], uid=str(uuid.uuid4()),
                    annotations={k: base64.b64decode(v) for k, v in record["annotations"].items()}),
                timeout=self.timeout)
            seed = bytes(answer.plaintext)
            if len(seed) != SEED_BYTES:
                raise ValidationError(f"decrypted seed is {len(seed)} bytes")
            self.seed_cache[encrypted_seed] = seed
        self.key_id_uses[("from_storage", record["key_id"])] = (
            self.key_id_uses.get(("from_storage", record["key_id"]), 0) + 1)
        blob = base64.b64decode(record["data"])
        info, nonce, sealed = blob[:INFO_BYTES], blob[INFO_BYTES:INFO_BYTES + NONCE_BYTES], blob[INFO_BYTES + NONCE_BYTES:]
        path = f"/registry/secrets/default/{name}".encode()
        return AESGCM(derive_dek(seed, info)).decrypt(nonce, sealed, path)

    def names(self):
        return sorted(self._load())

    def key_ids(self):
        return {record["key_id"] for record in self._load().values()}

    def metrics_page(self, provider_name="vault-kms"):
        """This instance's envelope metrics in Prometheus text, labels sorted as client_golang does."""
        server = key_id_hash(self.apiserver_id)
        lines = [
            "# HELP apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds [ALPHA] The last time "
            "in seconds when a keyID was returned by the Status RPC call.",
            "# TYPE apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds gauge",
        ]
        for key_id, seen in sorted(self.status_seen.items()):
            lines.append(
                "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{"
                f'apiserver_id_hash="{server}",key_id_hash="{key_id_hash(key_id)}",provider_name="{provider_name}"}} '
                f"{seen:.9e}")
        lines += [
            "# HELP apiserver_envelope_encryption_key_id_hash_total [ALPHA] Number of times a keyID is used split "
            "by transformation type, provider, and apiserver identity.",
            "# TYPE apiserver_envelope_encryption_key_id_hash_total counter",
        ]
        for (kind, key_id), count in sorted(self.key_id_uses.items()):
            lines.append(
                "apiserver_envelope_encryption_key_id_hash_total{"
                f'apiserver_id_hash="{server}",key_id_hash="{key_id_hash(key_id)}",provider_name="{provider_name}",'
                f'transformation_type="{kind}"}} {count}')
        return "\n".join(lines) + "\n"
