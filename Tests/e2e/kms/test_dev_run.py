"""`make run` (scripts/dev-run.sh): one command that starts a real OpenBao dev server, configures it
with the shipped deploy/vault/setup.sh through the real `bao` CLI, and leaves the plugin serving;
Ctrl-C (SIGINT to the foreground process group) stops it cleanly, the broker's token revoked while
OpenBao is still up."""
import os
import re
import signal
import subprocess
import time

from kmstest import vaultenv
from kmstest import kmsclient
from kmstest import openbao
from test_grpcurl import grpcurl


def test_make_run_serves_against_a_real_openbao_and_stops_on_ctrl_c(tmp_path):
    """Also from a clone in a 0700 directory (CI's fresh clone, a home directory): the front, an
    unprivileged user when run as root, execs a copy in a world-traversable directory."""
    state = str(tmp_path / "dev")
    env = {**os.environ, "VKK_DEV_DIR": state, "VKK_DEV_HEALTH_PORT": "0", "VKK_DEV_METRICS_PORT": "0"}
    for name in ("VAULT_ADDR", "VAULT_TOKEN", "BAO_ADDR", "BAO_TOKEN"):
        env.pop(name, None)
    log_path = str(tmp_path / "dev-run.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", os.path.join(vaultenv.ROOT, "scripts", "dev-run.sh")], stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 240  # install-deps and `swift build` run first (no-ops when current)
        text = ""
        while time.time() < deadline and "decrypt ok" not in text:
            assert proc.poll() is None, open(log_path).read()
            time.sleep(0.2)
            text = open(log_path, errors="replace").read()
        assert "decrypt ok" in text, text
        found = re.search(r"\(OpenBao v2\.7\.2 dev server at (http://127\.0\.0\.1:\d+)\)", text)
        assert found, text
        socket_path = os.path.join(state, "kms.sock")
        assert kmsclient.client(socket_path).Status(kmsclient.stubs()[0].StatusRequest(), timeout=5).healthz == "ok"
        assert grpcurl(socket_path, "Status", {})["healthz"] == "ok"
        # The real server behind it, configured by the shipped script: its key and AppRole exist.
        token = open(os.path.join(state, "root-token")).read().strip()
        assert token not in text
        key = openbao.OpenBaoServer.attach(found.group(1), token).request("GET", "transit/keys/kube-kek")["data"]
        assert key["type"] == "aes256-gcm96" and key["deletion_allowed"] is False
        assert os.stat(os.path.join(state, "root-token")).st_mode & 0o077 == 0
        assert os.stat(os.path.join(state, "openbao.log")).st_mode & 0o077 == 0
        # The binaries run from a world-traversable copy of their own, so that the front (as root:
        # another, unprivileged user) can exec its binary even from a clone in a 0700 directory.
        bindir = re.search(r"probe it with:  (/\S+)/vault-kube-kms probe", text).group(1)
        path = bindir
        while path != "/":
            assert os.stat(path).st_mode & 0o005 == 0o005, f"{path} is not world-traversable"
            path = os.path.dirname(path)
        fronts = subprocess.run(["pgrep", "-f", f"^{bindir}/vault-kube-kms-front"], capture_output=True,
                                text=True).stdout.split()
        assert len(fronts) == 1, fronts
        with open(f"/proc/{fronts[0]}/status") as status:
            front_uid = int(next(line for line in status if line.startswith("Uid:")).split()[1])
        assert (front_uid != 0) if os.geteuid() == 0 else (front_uid == os.geteuid())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)
    text = open(log_path, errors="replace").read()
    assert "broker.token.revoked" in text, text[-3000:]
    assert "revoke_failed" not in text
    done = subprocess.run(["pgrep", "-f", f"-dev-listen-address={found.group(1).split('//')[1]}"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "", "OpenBao left running"
    assert not os.path.exists(bindir), "the binaries' copy was left behind"
