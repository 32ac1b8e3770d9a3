/// The public key_id scheme (DESIGN section 6, docs/architecture.md "key_id").
///
///     transit-v<version>-<32 lowercase hex>
///
/// The hex is the first 16 bytes of SHA-256 over the key's scope: namespace, mount, key name,
/// version and that version's creation time (`KeyScope.digestInput`). The version prefix makes the
/// id readable in apiserver metrics; the digest makes a deleted and re-created key, or the same
/// key name in another namespace or mount, produce a different id. Hashing happens in the broker
/// (OpenSSL); this type only formats and parses.
public struct KeyID: Equatable, Hashable, Sendable, CustomStringConvertible {
    public static let prefix = "transit-v"
    public static let digestHexLength = 32

    public let version: UInt32
    public let digestHex: String

    public init?(version: UInt32, digestHex: String) {
        guard version >= 1, Self.isLowerHex(digestHex), digestHex.utf8.count == Self.digestHexLength else { return nil }
        self.version = version
        self.digestHex = digestHex
    }

    /// Parses a key_id; nil for anything that is not exactly of the scheme's form.
    public init?(parsing text: String) {
        guard text.utf8.count <= 64, text.hasPrefix(Self.prefix) else { return nil }
        let rest = text.dropFirst(Self.prefix.count)
        guard let dash = rest.firstIndex(of: "-") else { return nil }
        guard let version = parseVersionNumber(rest[..<dash]) else { return nil }
        self.init(version: version, digestHex: String(rest[rest.index(after: dash)...]))
    }

    public var description: String { "\(Self.prefix)\(version)-\(digestHex)" }

    static func isLowerHex(_ text: String) -> Bool {
        text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

/// The identity of one Transit key version, hashed into its key_id.
public struct KeyScope: Equatable, Sendable {
    public var namespace: String
    public var mount: String
    public var keyName: String
    public var version: UInt32
    public var creationTime: Int64

    public init(namespace: String, mount: String, keyName: String, version: UInt32, creationTime: Int64) {
        self.namespace = namespace
        self.mount = mount
        self.keyName = keyName
        self.version = version
        self.creationTime = creationTime
    }

    /// Bytes to hash: a domain-separation tag, then each component length-prefixed so that no two
    /// scopes share an encoding ("a/b" + "c" differs from "a" + "b/c").
    public var digestInput: [UInt8] {
        var writer = ByteWriter()
        writer.field(Array("vault-kube-kms key_id v1".utf8))
        writer.field(Array(namespace.utf8))
        writer.field(Array(mount.utf8))
        writer.field(Array(keyName.utf8))
        writer.u32(version)
        writer.u32(UInt32(truncatingIfNeeded: UInt64(bitPattern: creationTime) >> 32))
        writer.u32(UInt32(truncatingIfNeeded: UInt64(bitPattern: creationTime)))
        return writer.bytes
    }
}

/// Parses a decimal key version: 1 to 9 digits, no sign, no leading zero, at least 1.
public func parseVersionNumber<S: StringProtocol>(_ text: S) -> UInt32? {
    let utf8 = Array(text.utf8)
    guard (1...9).contains(utf8.count), utf8.allSatisfy({ (0x30...0x39).contains($0) }), utf8[0] != 0x30 else {
        return nil
    }
    var value: UInt32 = 0
    for digit in utf8 { value = value * 10 + UInt32(digit - 0x30) }
    return value
}
