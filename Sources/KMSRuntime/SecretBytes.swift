#if canImport(Glibc)
    import Glibc
#endif

/// Bytes that must never be printed, logged, encoded or left in memory: the AppRole secret ID and
/// the Vault token. The storage is allocated once, zeroed with `explicit_bzero` when released,
/// compared in constant time, and every textual form is `<redacted>`.
public final class SecretBytes: CustomStringConvertible, CustomDebugStringConvertible, @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer

    public init(_ bytes: some Collection<UInt8>) {
        storage = .allocate(byteCount: max(bytes.count, 1), alignment: 1)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        _ = UnsafeMutableRawBufferPointer(rebasing: storage[0..<bytes.count]).initializeMemory(
            as: UInt8.self, from: bytes)
        count = bytes.count
    }

    /// Copies `raw` in one piece. (The generic initializer above walks its collection element by
    /// element, unspecialized across modules: tens of instructions per byte.)
    public init(_ raw: UnsafeRawBufferPointer) {
        storage = .allocate(byteCount: max(raw.count, 1), alignment: 1)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        if let base = raw.baseAddress, raw.count > 0 {
            storage.baseAddress!.copyMemory(from: base, byteCount: raw.count)
        }
        count = raw.count
    }

    public let count: Int
    public var isEmpty: Bool { count == 0 }

    deinit {
        explicit_bzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    /// Lends the bytes for the duration of `body` (e.g. to build a request body that is itself wiped).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// Constant-time equality (no early exit on the first differing byte).
    public func constantTimeEquals(_ other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        var difference: UInt8 = 0
        withUnsafeBytes { mine in
            other.withUnsafeBytes { theirs in
                for index in 0..<count { difference |= mine[index] ^ theirs[index] }
            }
        }
        return difference == 0
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// A growable byte buffer for secret-bearing request bodies; wiped on release. Growth moves the
/// bytes into a larger buffer and wipes the old one, so no unwiped copy is left behind.
public final class WipedBuffer {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public func append(_ text: String) { reserve(text.utf8.count); bytes.append(contentsOf: text.utf8) }
    public func append(_ secret: SecretBytes) {
        reserve(secret.count)
        secret.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }
    public func append(contentsOf other: [UInt8]) { reserve(other.count); bytes.append(contentsOf: other) }
    public func append(byte: UInt8) { reserve(1); bytes.append(byte) }
    public func append(bytes other: UnsafeRawBufferPointer) { reserve(other.count); bytes.append(contentsOf: other) }
    public var count: Int { bytes.count }

    /// Lends the bytes without copying them.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    private func reserve(_ additional: Int) {
        guard bytes.count + additional > bytes.capacity else { return }
        var larger: [UInt8] = []
        larger.reserveCapacity(max(bytes.capacity * 2, bytes.count + additional, 64))
        larger.append(contentsOf: bytes)
        Self.wipe(&bytes)
        bytes = larger
    }

    private static func wipe(_ array: inout [UInt8]) {
        array.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicit_bzero(base, raw.count) }
        }
    }

    deinit { Self.wipe(&bytes) }
}
