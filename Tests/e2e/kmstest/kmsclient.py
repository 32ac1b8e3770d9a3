"""KMS v2 gRPC client stubs generated at test time from the project's own api.proto.

grpcio is an independent gRPC implementation (C core), so talking to the front through it proves
wire compatibility with the same kind of client kube-apiserver uses (grpc-go), not just with
ourselves.
"""
import importlib
import importlib.util
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
            _modules = (_load(out, "api_pb2"), _load(out, "api_pb2_grpc"))
        return _modules


def _load(directory, name):
    """Imports the generated module `name` from `directory` under its own name (api_pb2_grpc
    imports api_pb2 by that name), without putting the directory on sys.path."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(directory, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def api():
    """The generated message module (api_pb2): api().EncryptRequest(...) and the other messages."""
    return stubs()[0]


def channel(socket_path):
    import grpc

    return grpc.insecure_channel(f"unix://{socket_path}")


def client(socket_path):
    """A KeyManagementService stub on the Unix socket."""
    _, api_grpc = stubs()
    return api_grpc.KeyManagementServiceStub(channel(socket_path))
