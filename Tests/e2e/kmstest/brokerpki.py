"""A throw-away PKI generated at test time (never committed): a CA, a server certificate for
chosen DNS names and a client certificate, written as PEM files into a test directory."""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _cert(subject, issuer_key, issuer_name, key, ca, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer_name or name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_pki(directory, server_names=("localhost", "vault.test")):
    """Returns paths: ca, server, server-key, client, client-key. The server certificate names
    only `server_names` (no IP address), so connecting to 127.0.0.1 needs SNI or fails."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("vault-kube-kms-test-ca", ca_key, None, ca_key, ca=True)
    files = {}

    def write(name, cert, key):
        path = os.path.join(directory, f"{name}.pem")
        with open(path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(path, 0o644)
        files[name] = path
        if key is not None:
            key_path = os.path.join(directory, f"{name}-key.pem")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            files[name + "-key"] = key_path

    write("ca", ca, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    write("server", _cert("vault.test", ca_key, ca.subject, server_key, ca=False, san=list(server_names)), server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    write("client", _cert("vault-kube-kms", ca_key, ca.subject, client_key, ca=False), client_key)
    return files
