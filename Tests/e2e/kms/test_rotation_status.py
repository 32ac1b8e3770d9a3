"""`vault-kube-kms rotation status` against the live plugin and pages of apiserver-like clients
(apiserver_sim.ApiServer.metrics_page: kube-apiserver's key_id_hash formula, sha256 of the key_id,
computed in Python, independently of the plugin's OpenSSL): converged, pending (naming the
apiserver still on the old key_id), stuck, and undecided, each with its exit status."""
import os
import subprocess
import time

from kmstest import kmsclient
from kmstest.apiserver_sim import ApiServer, key_id_hash
from kmstest.plugin import Plugin, installed_bin_dir
from kmstest.ports import free_port

CONVERGED, PENDING, STUCK, UNDECIDED = 0, 1, 2, 3


def status(port, pages, *extra):
    args = [os.path.join(installed_bin_dir(), "vault-kube-kms"), "rotation", "status",
            "--plugin-metrics", f"http://127.0.0.1:{port}/metrics"]
    for page in pages:
        args += ["--apiserver-metrics", page]
    done = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def save(apiserver, path):
    with open(path, "w") as handle:
        handle.write(apiserver.metrics_page())
    return path


def wait_for_active_key_id(plugin, old, timeout=60):
    api = kmsclient.stubs()[0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        key_id = plugin.client().Status(api.StatusRequest(), timeout=3).key_id
        if key_id != old:
            return key_id
        time.sleep(0.5)
    raise AssertionError(f"the plugin still serves {old} after {timeout}s")


def test_rotation_status_follows_two_apiservers_through_a_rotation(vault, workdir, tmp_path):
    port = free_port()
    plugin = Plugin(
        vault, workdir, extra_args=["--metrics-port", str(port), "--health-port", "0", "--key-check-interval", "1s"])
    try:
        first, second = (ApiServer(plugin.socket, str(tmp_path / f"etcd-{n}.json")) for n in (1, 2))
        old = first.poll()
        second.poll()
        pages = [save(first, str(tmp_path / "a.prom")), save(second, str(tmp_path / "b.prom"))]
        code, out = status(port, pages)
        assert code == CONVERGED, out
        assert out.startswith("converged: 2 apiserver(s)"), out
        assert key_id_hash(old) in out

        vault.rotate_key()
        new = wait_for_active_key_id(plugin, old)
        first.poll()  # one apiserver has polled Status since, the other not yet
        pages = [save(first, pages[0]), save(second, pages[1])]
        code, out = status(port, pages)
        assert code == PENDING, out
        assert out.startswith("pending: rotation to key version"), out
        assert key_id_hash(second.apiserver_id) in out and key_id_hash(first.apiserver_id) not in out
        assert key_id_hash(old) in out  # the old key_id is one of ours: known, hence pending

        time.sleep(2)
        code, out = status(port, pages, "--stuck-after", "1s")
        assert code == STUCK, out
        assert out.startswith("stuck:") and key_id_hash(second.apiserver_id) in out, out

        second.poll()
        code, out = status(port, [save(second, pages[1]), pages[0]])
        assert code == CONVERGED, out
        assert key_id_hash(new) in out
    finally:
        plugin.stop()


def test_a_key_id_the_plugin_never_issued_is_stuck_and_an_unreadable_page_is_undecided(vault, workdir, tmp_path):
    port = free_port()
    plugin = Plugin(vault, workdir, extra_args=["--metrics-port", str(port), "--health-port", "0"])
    try:
        other = ApiServer(plugin.socket, str(tmp_path / "etcd.json"))
        other.status_seen = {"1": time.time()}  # what the Falco plugin's Status answers
        code, out = status(port, [save(other, str(tmp_path / "other.prom"))])
        assert code == STUCK, out
        assert "does not know" in out and key_id_hash("1") in out

        empty = tmp_path / "empty.prom"
        empty.write_text("# nothing here\nup 1\n")
        code, out = status(port, [str(empty)])
        assert code == UNDECIDED, out
        assert out.startswith("undecided:") and "not a kube-apiserver page" in out

        code, out = status(port, [str(tmp_path / "missing.prom")])
        assert code == UNDECIDED and "No such file" in out, out

        token = tmp_path / "token"
        token.write_text("secret-bearer-token-value\n")
        code, out = status(port, [f"http://127.0.0.1:{port}/metrics"], "--bearer-token-file", str(token))
        assert code == UNDECIDED and "refusing to send the bearer token over plain http" in out, out
        assert "secret-bearer-token-value" not in out
    finally:
        plugin.stop()
