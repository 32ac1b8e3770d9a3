/// The `vault:v<N>:` prefix of a Transit ciphertext. The broker reads the version from it to check
/// the request's key_id before any Vault call; the base64 body is Vault's business.
public struct VaultCiphertextPrefix: Equatable, Sendable {
    public static let marker = "vault:v"

    public let version: UInt32

    /// Parses the prefix of a ciphertext; nil unless it is `vault:v<N>:` with a valid N and a
    /// non-empty body after it.
    public init?(parsing ciphertext: [UInt8]) {
        let marker = Array(Self.marker.utf8)
        guard ciphertext.count > marker.count + 2, ciphertext.starts(with: marker) else { return nil }
        let afterMarker = ciphertext[marker.count...]
        guard let colon = afterMarker.prefix(10).firstIndex(of: 0x3A) else { return nil }
        guard colon + 1 < ciphertext.endIndex else { return nil }
        guard let digits = String(validating: ciphertext[marker.count..<colon], as: UTF8.self),
            let version = parseVersionNumber(digits)
        else { return nil }
        self.version = version
    }
}
