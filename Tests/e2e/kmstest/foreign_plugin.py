"""A stand-in for FalcoSuessgott/vault-kubernetes-kms (the KMS v2 plugin whose data the takeover
mode reads), written from its source, pkg/plugin/plugin_v2.go and pkg/vault/transit.go:

- Status answers healthz "ok", version "v2" and as key_id the Transit key's `latest_version`
  as a decimal string ("1", "2", ...), read from `GET <mount>/keys/<key>`;
- Encrypt posts the base64 plaintext to `<mount>/encrypt/<key>` (no key_version: Vault uses the
  latest), answers Vault's ciphertext string (`vault:vN:...`) as the ciphertext bytes and, as
  key_id, `latest_version` read again after the encrypt;
- Decrypt posts the ciphertext to `<mount>/decrypt/<key>` and ignores the key_id.

It talks to Vault with hvac and serves grpcio on a Unix socket, so kube-apiserver's simulator
(apiserver_sim.ApiServer) writes objects through it exactly as through the real plugin.
"""
import base64
from concurrent import futures

import grpc

from . import kmsclient


class ForeignPlugin:
    def __init__(self, vault, socket_path):
        api, api_grpc = kmsclient.stubs()
        transit = vault.root.secrets.transit
        mount, key = vault.mount, vault.key

        def latest_version():
            return str(transit.read_key(name=key, mount_point=mount)["data"]["latest_version"])

        class Servicer(api_grpc.KeyManagementServiceServicer):
            def Status(self, request, context):
                return api.StatusResponse(version="v2", healthz="ok", key_id=latest_version())

            def Encrypt(self, request, context):
                answer = transit.encrypt_data(
                    name=key, mount_point=mount, plaintext=base64.b64encode(request.plaintext).decode())
                return api.EncryptResponse(
                    ciphertext=answer["data"]["ciphertext"].encode(), key_id=latest_version())

            def Decrypt(self, request, context):
                answer = transit.decrypt_data(name=key, mount_point=mount, ciphertext=request.ciphertext.decode())
                return api.DecryptResponse(plaintext=base64.b64decode(answer["data"]["plaintext"]))

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        api_grpc.add_KeyManagementServiceServicer_to_server(Servicer(), self.server)
        self.server.add_insecure_port(f"unix://{socket_path}")
        self.server.start()

    def stop(self):
        self.server.stop(grace=None).wait()
