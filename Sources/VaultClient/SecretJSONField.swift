import KMSRuntime

/// Takes one secret string field out of a Vault answer (`auth.client_token`, `data.plaintext`)
/// straight from the body bytes into `SecretBytes`, on the strict `JSONDocument` reader: the
/// value never exists as a Swift `String`, and the only way out is `SecretBytes`. The whole
/// document is validated (grammar, UTF-8 in strings, nesting depth, no trailing bytes); a key
/// given twice on the path is refused rather than guessed at.
enum SecretJSONField {
    enum Failure: Error, Equatable {
        /// Not one well-formed JSON document.
        case malformed
        /// The path does not lead to a value.
        case missing
        /// The value at the path is not a string.
        case notAString
        /// The path leads to more than one value (a duplicate key).
        case duplicate
        /// The string is longer than the caller's bound.
        case tooLong
    }

    static let maxDepth = JSONDocument.maxDepth

    /// The string at `path` (object keys from the top) in `body`, unescaped, at most `maxBytes`.
    static func string(at path: [String], in body: WipedBuffer, maxBytes: Int) -> Result<SecretBytes, Failure> {
        let read = JSONDocument.read(body) { root throws(JSONDocument.Failure) -> SecretBytes? in
            guard let value = try find(path, in: root) else { return nil }
            return try value.secret(maxBytes: maxBytes)
        }
        switch read {
        case .success(let secret?): return .success(secret)
        case .success(nil): return .failure(.missing)
        case .failure(.duplicate): return .failure(.duplicate)
        case .failure(.wrongType): return .failure(.notAString)
        case .failure(.tooLong): return .failure(.tooLong)
        case .failure: return .failure(.malformed)
        }
    }

    /// The value at `path`; nil when a step is absent or is not an object (so it cannot hold the
    /// next key).
    static func find(_ path: [String], in root: JSONDocument.Value) throws(JSONDocument.Failure)
        -> JSONDocument.Value?
    {
        var value = root
        for key in path {
            guard value.kind == .object, let next = try value.optional(key) else { return nil }
            value = next
        }
        return value
    }

    /// The standard-base64 string at `path`, decoded into `SecretBytes` (the Transit plaintext).
    static func base64(at path: [String], in body: WipedBuffer, maxDecodedBytes: Int) -> Result<
        SecretBytes, Failure
    > {
        let encodedBound = (maxDecodedBytes + 2) / 3 * 4
        return string(at: path, in: body, maxBytes: encodedBound).flatMap { encoded in
            guard let decoded = Base64.decode(encoded) else { return .failure(.malformed) }
            guard decoded.count <= maxDecodedBytes else { return .failure(.tooLong) }
            return .success(decoded)
        }
    }
}

extension Base64 {
    /// Decodes standard base64 with padding (RFC 4648 section 4) into `SecretBytes`, through a
    /// scratch buffer wiped afterwards; nil for any byte outside the alphabet, bad padding or
    /// non-zero pad bits.
    static func decode(_ encoded: SecretBytes) -> SecretBytes? {
        encoded.withUnsafeBytes { raw -> SecretBytes? in
            guard raw.count % 4 == 0 else { return nil }
            guard raw.count > 0 else { return SecretBytes([]) }
            let out = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: raw.count / 4 * 3)
            defer {
                out.update(repeating: 0)
                out.deallocate()
            }
            do {
                var at = 0
                var index = 0
                while index < raw.count {
                    var value: UInt32 = 0
                    var padding = 0
                    for offset in 0..<4 {
                        let byte = raw[index + offset]
                        if byte == UInt8(ascii: "="), index + 4 == raw.count, offset >= 2 {
                            padding += 1
                            value <<= 6
                            continue
                        }
                        // Nothing but padding may follow padding.
                        guard padding == 0, let digit = digit(byte) else { return nil }
                        value = value << 6 | digit
                    }
                    if padding == 2 && value & 0xFFFF != 0 { return nil }
                    if padding == 1 && value & 0xFF != 0 { return nil }
                    out[at] = UInt8(value >> 16 & 0xFF)
                    if padding < 2 { out[at + 1] = UInt8(value >> 8 & 0xFF) }
                    if padding < 1 { out[at + 2] = UInt8(value & 0xFF) }
                    at += 3 - padding
                    index += 4
                }
                return SecretBytes(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: out[0..<at])))
            }
        }
    }
}
