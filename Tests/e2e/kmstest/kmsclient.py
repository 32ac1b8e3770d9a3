"""KMS v2 gRPC client stubs generated at test time from the project's own api.proto.

grpcio is an independent gRPC implementation (C core), so talking to the front through it proves
wire compatibility with the same kind of client kube-apiserver uses (grpc-go), not just with
ourselves.
"""
import importlib
import os
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PROTO_DIR = os.path.join(ROOT, "Sources", "KMSv2API")
_lock = threading.Lock()
_modules = None


def stubs():
    """Returns (api_pb2, api_pb2_grpc), generating them once per process."""
    global _modules
    with _lock:
        if _modules is None:
            from grpc_tools import protoc

            out = tempfile.mkdtemp(prefix="kms-stubs-")
            rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "api.proto"])
            if rc != 0:
                raise RuntimeError(f"grpc_tools.protoc failed with {rc}")
            sys.path.insert(0, out)
            _modules = (importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc"))
        return _modules


def channel(socket_path):
    import grpc

    return grpc.insecure_channel(f"unix://{socket_path}")


def client(socket_path):
    """A KeyManagementService stub on the Unix socket."""
    _, api_grpc = stubs()
    return api_grpc.KeyManagementServiceStub(channel(socket_path))
