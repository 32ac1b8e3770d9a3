"""The KMS v2 flow as kube-apiserver drives it (apiserver_sim.ApiServer): Status polls, one Encrypt per
key_id, HKDF-derived DEKs, objects stored with their key_id, Decrypt after a restart, a KEK rotation
and a restart of both the apiserver and the plugin without losing an object."""
import os
import subprocess
import time

import pytest

from kmstest.apiserver_sim import ApiServer, ValidationError, validate_annotations, validate_key_id
from kmstest.plugin import Plugin, installed_bin_dir

ROTATION_TIMEOUT = float(os.environ.get("KMS_ROTATION_TIMEOUT", "100"))


def key_check_args():
    """A short metadata probe interval when this build has the flag; the default (30 s) otherwise."""
    help_text = subprocess.run(
        [os.path.join(installed_bin_dir(), "vault-kube-kms"), "--help"], capture_output=True, text=True).stdout
    return ["--key-check-interval", "1s"] if "--key-check-interval" in help_text else []


def wait_for_new_key_id(apiserver, old, timeout=ROTATION_TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if apiserver.poll() != old:
            return apiserver.status_key_id
        time.sleep(0.5)
    raise AssertionError(f"key_id still {old} after {timeout}s")


def test_first_poll_encrypts_one_seed_and_objects_round_trip(plugin, tmp_path):
    apiserver = ApiServer(plugin.socket, str(tmp_path / "etcd.json"))
    key_id = apiserver.poll()
    assert apiserver.encrypt_calls == 1
    assert apiserver.rotations_refused == []
    for index in range(20):
        assert apiserver.write(f"secret-{index}", f"value-{index}".encode()) == key_id
    for index in range(20):
        assert apiserver.read(f"secret-{index}") == f"value-{index}".encode()
    assert apiserver.decrypt_calls == 0  # the write seed is cached, as in the apiserver


def test_status_polls_with_an_unchanged_key_id_never_encrypt_again(plugin, tmp_path):
    apiserver = ApiServer(plugin.socket, str(tmp_path / "etcd.json"))
    first = apiserver.poll()
    for _ in range(10):
        assert apiserver.poll() == first
    assert apiserver.encrypt_calls == 1


def test_a_restarted_apiserver_decrypts_each_distinct_seed_once(plugin, tmp_path):
    store = str(tmp_path / "etcd.json")
    writer = ApiServer(plugin.socket, store)
    writer.poll()
    for index in range(10):
        writer.write(f"s{index}", os.urandom(100))
    expected = {name: writer.read(name) for name in writer.names()}
    reader = ApiServer(plugin.socket, store)  # a new process: empty seed cache
    reader.poll()
    assert {name: reader.read(name) for name in reader.names()} == expected
    assert reader.decrypt_calls == 1


def test_objects_survive_a_kek_rotation_and_a_restart_of_apiserver_and_plugin(vault, workdir, tmp_path):
    store = str(tmp_path / "etcd.json")
    running = Plugin(vault, workdir, extra_args=key_check_args())
    try:
        apiserver = ApiServer(running.socket, store)
        old = apiserver.poll()
        written = {}
        for index in range(5):
            written[f"before-{index}"] = os.urandom(64)
            apiserver.write(f"before-{index}", written[f"before-{index}"])

        vault.rotate_key()
        new = wait_for_new_key_id(apiserver, old)
        assert new != old
        assert apiserver.write_seed[1] == new  # the apiserver accepted the new seed
        assert apiserver.encrypt_calls == 2
        assert apiserver.rotations_refused == []
        for index in range(5):
            written[f"after-{index}"] = os.urandom(64)
            assert apiserver.write(f"after-{index}", written[f"after-{index}"]) == new
        assert apiserver.key_ids() == {old, new}
    finally:
        running.stop()

    restarted = Plugin(vault, workdir, extra_args=key_check_args())
    try:
        fresh = ApiServer(restarted.socket, store)
        assert fresh.poll() == new  # the key_id is stable across plugin restarts
        for name, value in written.items():
            assert fresh.read(name) == value
        assert fresh.decrypt_calls == 2  # one per distinct seed (old and new key)
    finally:
        restarted.stop()


@pytest.mark.parametrize("key", ["example", "Upper.example.com", "a/b.example.com", "-x.example.com"])
def test_apiserver_validation_refuses_bad_annotation_keys(key):
    with pytest.raises(ValidationError):
        validate_annotations({key: b"v"})


def test_apiserver_validation_accepts_dns_annotation_keys_and_bounds_the_total():
    validate_annotations({"version.encryption.remote.io": b"1"})
    with pytest.raises(ValidationError):
        validate_annotations({"big.example.com": b"x" * 32768})


def test_apiserver_validation_bounds_the_key_id():
    validate_key_id("k" * 1024)
    for bad in ("", "k" * 1025):
        with pytest.raises(ValidationError):
            validate_key_id(bad)
