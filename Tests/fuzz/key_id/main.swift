// libFuzzer target: the key_id and ciphertext-prefix parsers the broker runs on every Decrypt
// before any Vault call. A parsed key_id must print back to exactly its input.
import KMSCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKeyID(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let prefix = VaultCiphertextPrefix(parsing: bytes) {
        precondition(prefix.version >= 1)
        precondition(bytes.starts(with: Array("vault:v\(prefix.version):".utf8)))
    }
    if let text = String(validating: bytes, as: UTF8.self) {
        if let keyID = KeyID(parsing: text) { precondition(keyID.description == text) }
        if let version = parseVersionNumber(text) { precondition(String(version) == text) }
    }
    return 0
}
