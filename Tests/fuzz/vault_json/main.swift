// libFuzzer target: Vault response bodies as the broker decodes them (VaultJSON with
// FoundationEssentials' JSONDecoder), plus the base64 check applied to Transit answers.
import KMSRuntime

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVaultJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = WipedBuffer(capacity: size)
    body.append(bytes: UnsafeRawBufferPointer(start: data, count: size))
    _ = VaultJSON.decode(VaultJSON.AuthResponse.self, from: body)
    _ = VaultJSON.decode(VaultJSON.KeyResponse.self, from: body)
    _ = VaultJSON.decode(VaultJSON.EncryptResponse.self, from: body)
    if let decrypted = VaultJSON.decode(VaultJSON.DecryptResponse.self, from: body) {
        _ = Base64.isStandardBase64(Array(decrypted.data.plaintext.utf8)[...])
    }
    _ = VaultJSON.errors(in: body)
    return 0
}
