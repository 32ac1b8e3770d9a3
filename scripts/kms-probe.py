#!/usr/bin/env python3
"""A KMS v2 client for a quick manual check: Status, then an Encrypt/Decrypt round trip of 32
random bytes, one line per step with its time. Exit status 0 only if every step passed.
Usage: kms-probe.py /path/to/kms.sock"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "e2e"))
import grpc  # noqa: E402

from kmstest import kmsclient  # noqa: E402


def main(path):
    api, _ = kmsclient.stubs()
    client = kmsclient.client(path)
    try:
        start = time.perf_counter()
        status = client.Status(api.StatusRequest(), timeout=3)
        print(f"status   {1000 * (time.perf_counter() - start):7.2f} ms  version={status.version} "
              f"healthz={status.healthz} key_id={status.key_id}")
        seed = os.urandom(32)
        start = time.perf_counter()
        encrypted = client.Encrypt(api.EncryptRequest(plaintext=seed, uid="probe"), timeout=3)
        print(f"encrypt  {1000 * (time.perf_counter() - start):7.2f} ms  {len(encrypted.ciphertext)} bytes "
              f"key_id={encrypted.key_id}")
        start = time.perf_counter()
        decrypted = client.Decrypt(
            api.DecryptRequest(ciphertext=encrypted.ciphertext, key_id=encrypted.key_id, uid="probe"), timeout=3)
        ok = decrypted.plaintext == seed
        print(f"decrypt  {1000 * (time.perf_counter() - start):7.2f} ms  round trip {'ok' if ok else 'MISMATCH'}")
        return 0 if ok and status.healthz == "ok" else 1
    except grpc.RpcError as error:
        print(f"failed: {error.code().name}: {error.details()}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
