// libFuzzer target: Vault response bodies as the broker decodes them (VaultJSON with
// FoundationEssentials' JSONDecoder for the non-secret fields, SecretJSONField for the token and
// the Transit plaintext, Base64.decode into SecretBytes).
import KMSRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVaultJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = WipedBuffer(capacity: size)
    body.append(bytes: UnsafeRawBufferPointer(start: data, count: size))
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
