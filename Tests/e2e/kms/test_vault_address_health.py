"""Issue 16: health says which Vault address serves. With `--vault-address <dead>,<live>` (the
first a closed loopback port, the second the module's real OpenBao) the broker fails over to index
1, and the deep readiness body gains `vault_address_index=1 of 2` on a second line, while
HashiCorp's `/readyz` keeps its exact body. No cluster needed."""
import types

from kmstest.plugin import Plugin
from test_health_modes import get, wait_for
from kmstest.ports import free_port


def test_deep_readiness_names_the_serving_address_and_hashicorp_readyz_stays_exact(vault, workdir):
    dead = free_port()  # bound then closed: connections to it are refused
    view = types.SimpleNamespace(
        address=f"http://127.0.0.1:{dead},{vault.address}", key_path=vault.key_path,
        auth_mount=vault.auth_mount, role_id=vault.role_id, secret_id_path=vault.secret_id_path)
    port = free_port()
    running = Plugin(view, workdir, extra_args=["--health-port", str(port), "--metrics-port", "0",
                                                "--health-mode", "hashicorp"])
    try:
        running.wait_healthy()
        assert wait_for(port, "/readyz/deep", 200) == (200, "ok\nvault_address_index=1 of 2\n")
        assert get("127.0.0.1", port, "/readyz") == (200, "ok\n")
        assert get("127.0.0.1", port, "/healthz") == (200, "ok\n")
    finally:
        running.stop()
