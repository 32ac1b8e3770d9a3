import KMSRuntime

/// A strict JSON reader (RFC 8259) that takes one secret string field out of a Vault answer
/// (`auth.client_token`, `data.plaintext`) straight from the body bytes into `SecretBytes`.
/// The value is unescaped into a `WipedBuffer`; it never exists as a Swift `String`, and the only
/// way out of this reader is `SecretBytes`. The whole document is validated (grammar, UTF-8 in
/// strings, nesting depth, no trailing bytes); a field given twice on the path is refused rather
/// than guessed at.
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

    static let maxDepth = 64

    /// The string at `path` (object keys from the top) in `body`, unescaped, at most `maxBytes`.
    static func string(at path: [String], in body: WipedBuffer, maxBytes: Int) -> Result<SecretBytes, Failure> {
        body.withUnsafeBytes { raw in
            var reader = Reader(bytes: raw, path: path.map { Array($0.utf8) }, maxBytes: maxBytes)
            do {
                reader.skipWhitespace()
                try reader.value(depth: 0, matched: 0)
                reader.skipWhitespace()
                guard reader.index == raw.count else { throw Failure.malformed }
            } catch let failure as Failure {
                return .failure(failure)
            } catch {
                return .failure(.malformed)
            }
            if reader.duplicate || reader.targets > 1 { return .failure(.duplicate) }
            if reader.targetIsNotAString { return .failure(.notAString) }
            guard let found = reader.found else { return .failure(.missing) }
            return .success(found.withUnsafeBytes { SecretBytes($0) })
        }
    }

    /// The standard-base64 string at `path`, decoded into `SecretBytes` (the Transit plaintext).
    static func base64(at path: [String], in body: WipedBuffer, maxDecodedBytes: Int) -> Result<SecretBytes, Failure> {
        let encodedBound = (maxDecodedBytes + 2) / 3 * 4
        return string(at: path, in: body, maxBytes: encodedBound).flatMap { encoded in
            guard let decoded = Base64.decode(encoded) else { return .failure(.malformed) }
            guard decoded.count <= maxDecodedBytes else { return .failure(.tooLong) }
            return .success(decoded)
        }
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: [[UInt8]]
        let maxBytes: Int
        var index = 0
        var found: WipedBuffer?
        /// Values met at the path, a key on the path given twice, a target that is not a string:
        /// recorded and reported once the whole document has been validated.
        var targets = 0
        var duplicate = false
        var targetIsNotAString = false

        init(bytes: UnsafeRawBufferPointer, path: [[UInt8]], maxBytes: Int) {
            self.bytes = bytes
            self.path = path
            self.maxBytes = maxBytes
        }

        private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        private mutating func expect(_ byte: UInt8) throws(Failure) {
            guard current == byte else { throw .malformed }
            index += 1
        }

        /// `matched`: how many path components lead here, or -1 when off the path.
        mutating func value(depth: Int, matched: Int) throws(Failure) {
            guard depth <= SecretJSONField.maxDepth, let byte = current else { throw .malformed }
            let isTarget = matched == path.count
            if isTarget {
                targets += 1
                if byte != UInt8(ascii: "\"") { targetIsNotAString = true }
            }
            switch byte {
            case UInt8(ascii: "{"):
                try object(depth: depth + 1, matched: isTarget ? -1 : matched)
            case UInt8(ascii: "["):
                try array(depth: depth + 1)
            case UInt8(ascii: "\"") where isTarget && targets == 1:
                let buffer = WipedBuffer(capacity: 64)
                try string(into: buffer, limit: maxBytes)
                found = buffer
            case UInt8(ascii: "\""):
                try string(into: nil, limit: Int.max)
            default:
                try scalar()
            }
        }

        private mutating func object(depth: Int, matched: Int) throws(Failure) {
            try expect(UInt8(ascii: "{"))
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return
            }
            var keys: [[UInt8]] = []
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw .malformed }
                let key = WipedBuffer(capacity: 16)
                try string(into: key, limit: 4096)
                skipWhitespace()
                try expect(UInt8(ascii: ":"))
                skipWhitespace()
                var next = -1
                if matched >= 0 && matched < path.count && key.bytes == path[matched] {
                    // A duplicate key on the path is ambiguous (decoders disagree on which wins).
                    if keys.contains(key.bytes) { duplicate = true }
                    keys.append(key.bytes)
                    next = matched + 1
                }
                try value(depth: depth, matched: next)
                skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "}"))
                return
            }
        }

        private mutating func array(depth: Int) throws(Failure) {
            try expect(UInt8(ascii: "["))
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                skipWhitespace()
                try value(depth: depth, matched: -1)
                skipWhitespace()
                if current == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                try expect(UInt8(ascii: "]"))
                return
            }
        }

        /// `true`, `false`, `null` or a number (section 6 grammar).
        private mutating func scalar() throws(Failure) {
            for literal in ["true", "false", "null"] {
                let utf8 = Array(literal.utf8)
                if index + utf8.count <= bytes.count && (0..<utf8.count).allSatisfy({ bytes[index + $0] == utf8[$0] }) {
                    index += utf8.count
                    return
                }
            }
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, isDigit(first) else { throw .malformed }
            index += 1
            if first != UInt8(ascii: "0") { while let byte = current, isDigit(byte) { index += 1 } }
            if current == UInt8(ascii: ".") {
                index += 1
                try digits()
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                try digits()
            }
        }

        private mutating func digits() throws(Failure) {
            guard let byte = current, isDigit(byte) else { throw .malformed }
            while let byte = current, isDigit(byte) { index += 1 }
        }

        private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        /// A string literal; its unescaped UTF-8 goes to `output` (when given), at most `limit` bytes.
        private mutating func string(into output: WipedBuffer?, limit: Int) throws(Failure) {
            try expect(UInt8(ascii: "\""))
            var written = 0
            func emit(_ byte: UInt8) throws(Failure) {
                written += 1
                guard written <= limit else { throw .tooLong }
                output?.append(byte: byte)
            }
            while true {
                guard let byte = current else { throw .malformed }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw .malformed }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): try emit(escape)
                    case UInt8(ascii: "b"): try emit(0x08)
                    case UInt8(ascii: "f"): try emit(0x0C)
                    case UInt8(ascii: "n"): try emit(0x0A)
                    case UInt8(ascii: "r"): try emit(0x0D)
                    case UInt8(ascii: "t"): try emit(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard current == UInt8(ascii: "\\") else { throw .malformed }
                            index += 1
                            guard current == UInt8(ascii: "u") else { throw .malformed }
                            index += 1
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw .malformed }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw .malformed
                        }
                        try Self.utf8(scalar, emit)
                    default:
                        throw .malformed
                    }
                case 0x00..<0x20:
                    throw .malformed
                case 0x00..<0x80:
                    try emit(byte)
                default:
                    // A multi-byte UTF-8 sequence: checked (no overlongs, no surrogates, <= U+10FFFF).
                    let length: Int
                    var lower: UInt8 = 0x80
                    var upper: UInt8 = 0xBF
                    switch byte {
                    case 0xC2...0xDF: length = 2
                    case 0xE0: (length, lower) = (3, 0xA0)
                    case 0xE1...0xEC, 0xEE...0xEF: length = 3
                    case 0xED: (length, upper) = (3, 0x9F)
                    case 0xF0: (length, lower) = (4, 0x90)
                    case 0xF1...0xF3: length = 4
                    case 0xF4: (length, upper) = (4, 0x8F)
                    default: throw .malformed
                    }
                    try emit(byte)
                    for position in 1..<length {
                        guard let next = current else { throw .malformed }
                        let low: UInt8 = position == 1 ? lower : 0x80
                        let high: UInt8 = position == 1 ? upper : 0xBF
                        guard next >= low && next <= high else { throw .malformed }
                        index += 1
                        try emit(next)
                    }
                }
            }
        }

        private mutating func hex4() throws(Failure) -> UInt32 {
            guard index + 4 <= bytes.count else { throw .malformed }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw .malformed
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        /// Writes the UTF-8 of `scalar` byte by byte (no temporary array holding secret bytes).
        private static func utf8(_ scalar: UInt32, _ emit: (UInt8) throws(Failure) -> Void) throws(Failure) {
            switch scalar {
            case 0..<0x80:
                try emit(UInt8(scalar))
            case 0x80..<0x800:
                try emit(UInt8(0xC0 | scalar >> 6))
                try emit(UInt8(0x80 | scalar & 0x3F))
            case 0x800..<0x10000:
                try emit(UInt8(0xE0 | scalar >> 12))
                try emit(UInt8(0x80 | (scalar >> 6) & 0x3F))
                try emit(UInt8(0x80 | scalar & 0x3F))
            default:
                try emit(UInt8(0xF0 | scalar >> 18))
                try emit(UInt8(0x80 | (scalar >> 12) & 0x3F))
                try emit(UInt8(0x80 | (scalar >> 6) & 0x3F))
                try emit(UInt8(0x80 | scalar & 0x3F))
            }
        }
    }
}

extension Base64 {
    /// Decodes standard base64 with padding (RFC 4648 section 4) into `SecretBytes`, through a
    /// wiped buffer; nil for any byte outside the alphabet, bad padding or non-zero pad bits.
    static func decode(_ encoded: SecretBytes) -> SecretBytes? {
        encoded.withUnsafeBytes { raw -> SecretBytes? in
            guard raw.count % 4 == 0 else { return nil }
            let output = WipedBuffer(capacity: raw.count / 4 * 3)
            var index = 0
            while index < raw.count {
                var value: UInt32 = 0
                var padding = 0
                for offset in 0..<4 {
                    let byte = raw[index + offset]
                    let digit: UInt32
                    switch byte {
                    case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = UInt32(byte - UInt8(ascii: "A"))
                    case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = UInt32(byte - UInt8(ascii: "a") + 26)
                    case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0") + 52)
                    case UInt8(ascii: "+"): digit = 62
                    case UInt8(ascii: "/"): digit = 63
                    case UInt8(ascii: "=") where index + 4 == raw.count && offset >= 2:
                        digit = 0
                        padding += 1
                    default: return nil
                    }
                    // Nothing but padding may follow padding.
                    if padding > 0 && byte != UInt8(ascii: "=") { return nil }
                    value = value << 6 | digit
                }
                let count = 3 - padding
                if padding == 2 && value & 0xFFFF != 0 { return nil }
                if padding == 1 && value & 0xFF != 0 { return nil }
                output.append(byte: UInt8(value >> 16 & 0xFF))
                if count > 1 { output.append(byte: UInt8(value >> 8 & 0xFF)) }
                if count > 2 { output.append(byte: UInt8(value & 0xFF)) }
                value = 0
                index += 4
            }
            return output.withUnsafeBytes { SecretBytes($0) }
        }
    }
}
