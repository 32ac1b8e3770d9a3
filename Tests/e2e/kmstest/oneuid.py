"""The one-uid topology as a non-root container runs it: the broker started as an unprivileged
uid (here with setpriv) with `--one-uid`, the front spawned at that same uid inside its required
sandbox. The secret-ID file is that uid's own (0400), so only the sandbox keeps the front from it."""
import ctypes
import os
import shutil
import tempfile

from .plugin import Plugin

# A uid no other suite uses, so that no test of another file shares (or signals) its processes.
ONE_UID = 64015


def kernel_landlock_abi():
    """landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION); 0 without Landlock."""
    libc = ctypes.CDLL(None, use_errno=True)
    return max(libc.syscall(444, None, 0, 1), 0)


def as_uid(uid=ONE_UID):
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


class OneUIDPlugin(Plugin):
    def __init__(self, vault, extra_args=(), uid=ONE_UID, wait_ready=True, env=None, spec_hook=None):
        """`spec_hook(self)` runs once the secret-ID file exists, before the broker starts."""
        self.uid = uid
        self.root_dir = tempfile.mkdtemp(prefix="vkk-oneuid-")  # /tmp/pytest-of-root is 0700
        os.chmod(self.root_dir, 0o755)
        secret_dir = os.path.join(self.root_dir, "secret")
        os.mkdir(secret_dir, 0o700)
        self.secret_id = vault.new_secret_id()
        self.secret_id_path = os.path.join(secret_dir, "secret-id")
        with open(self.secret_id_path, "w") as handle:
            handle.write(self.secret_id + "\n")
        os.chmod(self.secret_id_path, 0o400)
        work = os.path.join(self.root_dir, "work")
        os.makedirs(os.path.join(work, "run"))
        for path in (self.secret_id_path, secret_dir, work, os.path.join(work, "run")):
            os.chown(path, uid, uid)
        if spec_hook:
            spec_hook(self)
        super().__init__(vault, work, extra_args=["--one-uid", *extra_args], env=env, wait_ready=wait_ready,
                         command_prefix=as_uid(uid), secret_id_path=self.secret_id_path)

    def stop(self, timeout=15):
        code = super().stop(timeout)
        shutil.rmtree(self.root_dir, ignore_errors=True)
        return code
