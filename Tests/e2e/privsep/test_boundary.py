"""The privilege boundary as the binaries show it, not just as Package.swift says it."""
import os
import re
import subprocess

from kmstest.plugin import installed_bin_dir
from kmstest.sources import import_lines


def linked(binary):
    output = subprocess.run(["ldd", os.path.join(installed_bin_dir(), binary)], capture_output=True, text=True,
                            check=True).stdout
    return {line.split()[0] for line in output.splitlines() if line.strip()}


def test_front_links_neither_libcurl_nor_openssl():
    libraries = linked("vault-kube-kms-front")
    assert any(name.startswith("libnghttp2") for name in libraries)
    forbidden = [name for name in libraries if re.match(r"lib(curl|ssl|crypto)\b", name)]
    assert forbidden == []


def test_broker_links_libcurl_and_openssl():
    libraries = linked("vault-kube-kms")
    assert any(name.startswith("libcurl") for name in libraries)
    assert any(name.startswith("libssl") for name in libraries)


def test_front_sources_import_no_broker_side_module():
    bad = [entry for folder in ("Sources/Front", "Sources/vault-kube-kms-front") for entry in import_lines(folder)
           if entry[2] in {"Broker", "VaultClient", "Preflight", "CCurl", "COpenSSL", "CSpawn"}]
    assert bad == []


def test_broker_sources_import_no_front_side_module():
    bad = [entry for folder in ("Sources/Broker", "Sources/VaultClient", "Sources/Preflight", "Sources/vault-kube-kms")
           for entry in import_lines(folder)
           if entry[2] in {"Front", "CNGHTTP2", "KMSv2API", "SwiftProtobuf"}]
    assert bad == []
