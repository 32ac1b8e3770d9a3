"""Writes the committed seed corpora (Tests/fuzz/<target>/corpus): a few valid inputs per target,
built with the independent Python codec of Tests/e2e/kmstest/brokerproto.py and grpcio's protobuf."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from kmstest import brokerproto as bp  # noqa: E402


def field(data):
    return struct.pack(">H", len(data)) + data


def write(target, name, data):
    folder = os.path.join(HERE, target, "corpus")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)


KEY_ID = b"transit-v3-" + b"0123456789abcdef" * 2
CIPHERTEXT = b"vault:v3:" + b"QUJD" * 20

write("broker_request", "hello", bp.encode(bp.HELLO_REQUEST, 1, field(b"0.1.0")))
write("broker_request", "status", bp.encode(bp.STATUS_REQUEST, 2))
write("broker_request", "heartbeat", bp.encode(bp.HEARTBEAT_REQUEST, 3))
write("broker_request", "encrypt", bp.encode(bp.ENCRYPT_REQUEST, 4, struct.pack(">I", 3000) + field(b"uid") + field(bytes(range(32)))))
write("broker_request", "decrypt", bp.encode(
    bp.DECRYPT_REQUEST, 5, struct.pack(">I", 3000) + field(b"uid") + field(KEY_ID) + field(CIPHERTEXT)))

write("broker_answer", "hello", bp.encode(bp.HELLO_ANSWER, 1, b"\0" + field(b"0.1.0") + struct.pack(">I", 256)))
write("broker_answer", "status", bp.encode(bp.STATUS_ANSWER, 2, b"\0" + field(b"ok") + field(KEY_ID)))
write("broker_answer", "encrypt", bp.encode(bp.ENCRYPT_ANSWER, 4, b"\0" + field(CIPHERTEXT) + field(KEY_ID)))
write("broker_answer", "decrypt", bp.encode(bp.DECRYPT_ANSWER, 5, b"\0" + field(bytes(range(32)))))
write("broker_answer", "error", bp.encode(bp.DECRYPT_ANSWER, 6, b"\x07"))
write("broker_answer", "metrics", bp.encode(
    bp.METRICS_ANSWER, 7, b"\0" + field(b"OpenSSL 3.0.19") + struct.pack(">H", 2) + struct.pack(">HQ", 1, 42)
    + struct.pack(">HQ", 2, 7)))
write("broker_answer", "heartbeat", bp.encode(bp.HEARTBEAT_ANSWER, 3, b"\0"))


def pb_bytes(number, data):
    return bytes([number << 3 | 2, len(data)]) + data if len(data) < 128 else \
        bytes([number << 3 | 2, len(data) & 0x7F | 0x80, len(data) >> 7]) + data


def grpc(control, message):
    return bytes([control]) + b"\0" + struct.pack(">I", len(message)) + message


# control byte: method = control % 3 (0 Status, 1 Encrypt, 2 Decrypt), chunk = control >> 2.
write("grpc_request", "status", grpc(0 | 0x40, b""))
write("grpc_request", "encrypt", grpc(1 | 0x40, pb_bytes(1, bytes(range(32))) + pb_bytes(2, b"uid-1")))
annotation = pb_bytes(1, b"version.encryption.remote.io") + pb_bytes(2, b"1")
write("grpc_request", "decrypt", grpc(
    2 | 0x08, pb_bytes(1, CIPHERTEXT) + pb_bytes(2, b"uid-2") + pb_bytes(3, KEY_ID) + pb_bytes(4, annotation)))

write("key_id", "key_id", KEY_ID)
write("key_id", "ciphertext", CIPHERTEXT)
write("key_id", "version", b"42")

write("vault_json", "login", b'{"auth":{"client_token":"hvs.x","lease_duration":3600,"renewable":true}}')
write("vault_json", "key", b'{"data":{"type":"aes256-gcm96","latest_version":2,"min_decryption_version":1,'
      b'"keys":{"1":1700000000,"2":1700000100}}}')
write("vault_json", "encrypt", b'{"data":{"ciphertext":"vault:v2:QUJD","key_version":2}}')
write("vault_json", "decrypt", b'{"data":{"plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}')
write("vault_json", "errors", b'{"errors":["1 error occurred:\\n\\t* permission denied\\n\\n"]}')
write("vault_json", "escaped", b'{"auth":{"client_token":"hvs.\\u0041\\/\\ud83d\\ude00","lease_duration":1,"renewable":false},"data":[1,-0.5e3,true,null,{}]}')

write("http_request", "metrics", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nAccept: text/plain\r\n\r\n")
write("http_request", "readyz", b"GET /readyz?verbose HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kube-probe/1.31\r\n\r\n")
write("http_request", "head", b"HEAD /livez HTTP/1.0\r\n\r\n")
