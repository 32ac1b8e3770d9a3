import COpenSSL
import KMSCore

/// Computes the public key_id of a Transit key version (the scheme is documented on `KeyID`):
/// `transit-v<version>-<first 16 bytes of SHA-256(KeyScope.digestInput) in hex>`.
enum KeyIDDerivation {
    static func keyID(for scope: KeyScope) -> KeyID {
        let digest = sha256(scope.digestInput)
        let hex = digest.prefix(KeyID.digestHexLength / 2).map { byte -> String in
            let text = String(byte, radix: 16)
            return byte < 0x10 ? "0" + text : text
        }.joined()
        guard let keyID = KeyID(version: scope.version, digestHex: hex) else {
            // Only a version of 0 can fail here, and callers derive ids for Vault versions >= 1.
            preconditionFailure("key_id derivation for version \(scope.version)")
        }
        return keyID
    }

    /// SHA-256 through OpenSSL's EVP interface (so the FIPS provider applies when configured).
    static func sha256(_ input: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = input.withUnsafeBytes { raw in
            digest.withUnsafeMutableBufferPointer { out in
                EVP_Digest(raw.baseAddress, raw.count, out.baseAddress, &length, EVP_sha256(), nil)
            }
        }
        precondition(ok == 1 && length == 32, "OpenSSL SHA-256 failed")
        return Array(digest.prefix(Int(length)))
    }
}
