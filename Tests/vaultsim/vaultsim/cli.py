"""Command line: ``vault-sim server -dev [flags]``, parsed the way Go's flag package does
(``-flag=value``, ``-flag value``, ``--flag=value``; boolean flags stand alone)."""

from __future__ import annotations

import signal
import ssl
import sys
import threading
from dataclasses import dataclass
from typing import Optional

from .approle import AppRoleBackend
from .audit import FileAuditDevice
from .server import App, SimServer
from .state import EDITIONS, State, random_id
from .system import SystemBackend
from .tokens import TokenBackend, TokenStore
from .transit import TransitBackend

USAGE = """\
Usage: vault-sim server -dev [options]

  -dev                          required: in-memory, unsealed, root token printed
  -dev-root-token-id=ID         the root token (default: random hvs.*)
  -dev-listen-address=ADDR      host:port to listen on; port 0 picks a free port (default 127.0.0.1:8200)
  -edition=NAME                 community (default), enterprise or openbao
  -audit-file=PATH              enable a file audit device at "file/" writing to PATH
  -dev-tls-cert-file=PATH       serve HTTPS with this certificate chain (PEM)
  -dev-tls-key-file=PATH        ... and this private key (PEM)
  -dev-tls-client-ca-file=PATH  require client certificates signed by this CA
  -verbose                      log each request to stderr
"""

BOOL_FLAGS = {"dev", "verbose"}
VALUE_FLAGS = {"dev-root-token-id", "dev-listen-address", "edition", "audit-file",
               "dev-tls-cert-file", "dev-tls-key-file", "dev-tls-client-ca-file"}


class UsageError(Exception):
    pass


@dataclass
class Options:
    dev: bool = False
    root_token: str = ""
    host: str = "127.0.0.1"
    port: int = 8200
    edition: str = "community"
    audit_file: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    verbose: bool = False


def parse_args(argv: list[str]) -> Options:
    if not argv or argv[0] != "server":
        raise UsageError("the only command is 'server'")
    values: dict[str, str] = {}
    flags: set[str] = set()
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name in BOOL_FLAGS:
            if eq and value.lower() not in ("true", "false", "1", "0"):
                raise UsageError(f"invalid boolean value {value!r} for -{name}")
            if not eq or value.lower() in ("true", "1"):
                flags.add(name)
            continue
        if name not in VALUE_FLAGS:
            raise UsageError(f"flag provided but not defined: -{name}")
        if not eq:
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        values[name] = value
    opts = Options(dev="dev" in flags, verbose="verbose" in flags)
    if not opts.dev:
        raise UsageError("vault-sim only runs in -dev mode")
    opts.root_token = values.get("dev-root-token-id", "")
    address = values.get("dev-listen-address", "127.0.0.1:8200")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"invalid -dev-listen-address {address!r}: want host:port")
    opts.host, opts.port = host.strip("[]") or "127.0.0.1", int(port)
    opts.edition = values.get("edition", "community")
    if opts.edition not in EDITIONS:
        raise UsageError(f"unknown -edition {opts.edition!r}: want one of {', '.join(EDITIONS)}")
    opts.audit_file = values.get("audit-file", "")
    opts.tls_cert = values.get("dev-tls-cert-file", "")
    opts.tls_key = values.get("dev-tls-key-file", "")
    opts.tls_client_ca = values.get("dev-tls-client-ca-file", "")
    if bool(opts.tls_cert) != bool(opts.tls_key):
        raise UsageError("-dev-tls-cert-file and -dev-tls-key-file go together")
    if opts.tls_client_ca and not opts.tls_cert:
        raise UsageError("-dev-tls-client-ca-file needs -dev-tls-cert-file and -dev-tls-key-file")
    return opts


def build_state(edition: str, root_token: str, audit_file: str = "") -> State:
    state = State(EDITIONS[edition], root_token or "hvs." + random_id(24))
    state.tokens = TokenStore(state)
    state.system_backend = SystemBackend(state)
    state.token_backend = TokenBackend(state)
    state.backend_factories["transit"] = TransitBackend
    state.auth_factories["approle"] = AppRoleBackend
    state.new_namespace("")
    state.tokens.create_root(state.root_token_id)
    if audit_file:
        state.audit_devices["file/"] = FileAuditDevice("file/", audit_file)
    return state


def tls_context(opts: Options) -> Optional[ssl.SSLContext]:
    if not opts.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    if opts.tls_client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(opts.tls_client_ca)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def banner(state: State, scheme: str, host: str, port: int) -> str:
    addr = f"{scheme}://{host}:{port}"
    tls = "enabled" if scheme == "https" else "disabled"
    return f"""==> Vault server configuration:

             Api Address: {addr}
                     Cgo: disabled
              Listener 1: tcp (addr: "{host}:{port}", tls: "{tls}")
                 Storage: inmem
                 Version: Vault v{state.edition.version} (vaultsim, edition {state.edition.name})

WARNING! dev mode is enabled! In this mode, Vault runs entirely in-memory
and starts unsealed with a single unseal key. The root token is already
authenticated to the CLI, so you can immediately begin using Vault.

You may need to set the following environment variables:

    $ export VAULT_ADDR='{addr}'

The unseal key and root token are displayed below in case you want to
seal/unseal the Vault or re-authenticate.

Unseal Key: {state.unseal_key_b64()}
Root Token: {state.root_token_id}

Development mode should NOT be used in production installations!

==> Vault server started! Listening on {addr}
"""


def main(argv: Optional[list[str]] = None) -> int:
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"vault-sim: {exc}\n\n{USAGE}")
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        state = build_state(opts.edition, opts.root_token, opts.audit_file)
        server = SimServer((opts.host, opts.port), App(state, verbose=opts.verbose),
                           tls_context(opts))
    except (OSError, ssl.SSLError) as exc:
        sys.stderr.write(f"vault-sim: cannot start: {exc}\n")
        return 1
    port = server.server_address[1]
    host = opts.host if ":" not in opts.host else f"[{opts.host}]"
    sys.stdout.write(banner(state, "https" if opts.tls_cert else "http", host, port))
    sys.stdout.flush()

    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="vaultsim-http", daemon=True)
    worker.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    for device in list(state.audit_devices.values()):
        device.close()
    try:
        sys.stdout.write("==> Vault shutdown triggered\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our output any more
    return 0
