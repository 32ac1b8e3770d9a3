// libFuzzer target: Vault response bodies as the broker reads them: the strict JSONDocument reader
// (every value of the document visited through every accessor), the VaultJSON answer types on it,
// SecretJSONField for the token and the Transit plaintext, Base64.decode into SecretBytes.
import KMSRuntime

/// Visits every value with every accessor: none may crash, whatever the kind.
func visit(_ value: JSONDocument.Value, depth: Int = 0) {
    if depth > JSONDocument.maxDepth + 1 { fatalError("deeper than the reader allows") }
    _ = try? value.string()
    _ = try? value.bytes()
    _ = try? value.bool()
    _ = try? value.int64()
    _ = try? value.secret(maxBytes: 64)
    _ = try? value.optional("data")
    if let members = try? value.members() {
        for (_, member) in members { visit(member, depth: depth + 1) }
    }
    if let elements = try? value.elements() {
        for element in elements { visit(element, depth: depth + 1) }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVaultJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = WipedBuffer(capacity: size)
    body.append(bytes: UnsafeRawBufferPointer(start: data, count: size))
    _ = JSONDocument.read(body) { root in visit(root) }
    _ = VaultJSON.decode(VaultJSON.AuthResponse.self, from: body)
    _ = VaultJSON.decode(VaultJSON.KeyResponse.self, from: body)
    _ = VaultJSON.decode(VaultJSON.EncryptResponse.self, from: body)
    let token = SecretJSONField.string(at: ["auth", "client_token"], in: body, maxBytes: 4096)
    if case .success(let secret) = token, secret.count > 4096 { fatalError("token over its bound") }
    let plaintext = SecretJSONField.base64(at: ["data", "plaintext"], in: body, maxDecodedBytes: 65536)
    if case .success(let secret) = plaintext, secret.count > 65536 { fatalError("plaintext over its bound") }
    _ = VaultJSON.errors(in: body)
    return 0
}
