import KMSRuntime

/// A strict JSON reader (RFC 8259) for the few fields the broker reads from Vault's answers.
///
/// `read` validates the whole body once (grammar, UTF-8 in strings, nesting depth, nothing after
/// the value) and indexes it: one `Node` per value, pointing into the body's bytes. Nothing is
/// copied until a field is asked for, and then only that field: `string()` for public text,
/// `secret(maxBytes:)` straight from the body into `SecretBytes` (the token, the plaintext), never
/// through a Swift `String`. Looking up a key that the object holds twice is an error, never a
/// guess (decoders disagree on which copy wins). The document lives only inside `read`'s closure,
/// while the body's bytes are lent.
package struct JSONDocument {
    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// Not one well-formed JSON document (including invalid UTF-8 in a string).
        case malformed
        /// The body ends inside the value.
        case truncated
        /// Nested deeper than `maxDepth`.
        case tooDeep
        /// The object has no such key (or the path leads through a non-object).
        case missing(String)
        /// The value is not of the type asked for.
        case wrongType(String)
        /// The object holds the key more than once.
        case duplicate(String)
        /// A number outside the Int64 range (or not finite).
        case outOfRange(String)
        /// A string longer than the caller's bound.
        case tooLong(String)

        package var description: String {
            switch self {
            case .malformed: "malformed JSON"
            case .truncated: "truncated JSON"
            case .tooDeep: "JSON nested too deep"
            case .missing(let key): "missing \(key)"
            case .wrongType(let key): "wrong type for \(key)"
            case .duplicate(let key): "duplicate key \(key)"
            case .outOfRange(let key): "number out of range for \(key)"
            case .tooLong(let key): "\(key) too long"
            }
        }
    }

    package static let maxDepth = 64

    package enum Kind: UInt8 {
        case object, array, string, number, `true`, `false`, null
    }

    struct Node {
        var kind: Kind
        /// Set for a string holding an escape (it needs unescaping, not just slicing).
        var escaped: Bool
        /// Byte range of the token: for strings including the quotes, for containers the brackets.
        var start: Int32
        var end: Int32
        /// Index of the node after this value and everything inside it.
        var after: Int32
    }

    let bytes: UnsafeRawBufferPointer
    private(set) var nodes: [Node] = []

    /// Parses `body` and lends the document to `use`; a validation failure or one thrown by `use`
    /// comes back as `.failure`.
    package static func read<R>(_ body: WipedBuffer, _ use: (Value) throws(Failure) -> R) -> Result<R, Failure> {
        body.withUnsafeBytes { raw in
            do throws(Failure) {
                let document = try JSONDocument(validating: raw)
                return .success(try use(Value(document: document, index: 0)))
            } catch {
                return .failure(error)
            }
        }
    }

    init(validating bytes: UnsafeRawBufferPointer) throws(Failure) {
        guard bytes.count < Int(Int32.max) else { throw .malformed }
        self.bytes = bytes
        nodes.reserveCapacity(16)
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        try parser.value(depth: 0, into: &nodes)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw .malformed }
    }

    // MARK: values

    /// One value of the document. `path` names it in errors: its key (never content).
    package struct Value {
        let document: JSONDocument
        let index: Int
        var path: StaticString = "$"

        var node: Node { document.nodes[index] }
        package var kind: Kind { node.kind }
        package var isNull: Bool { kind == .null }

        /// The value under `key`; nil when the object lacks it. Throws when this is not an object
        /// or the key is there twice.
        package func optional(_ key: StaticString) throws(Failure) -> Value? {
            try lookUp(UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount), label: key)
        }

        /// As `optional(_:)` for a key known only at run time.
        package func optional(_ key: String) throws(Failure) -> Value? {
            var key = key
            // withUTF8 rethrows untyped: carry the typed failure out as a Result.
            let result = key.withUTF8 { utf8 in
                Result { () throws(Failure) in try lookUp(UnsafeRawBufferPointer(utf8), label: "key") }
            }
            return try result.get()
        }

        private func lookUp(_ wanted: UnsafeRawBufferPointer, label key: StaticString) throws(Failure) -> Value? {
            guard kind == .object else { throw .wrongType("\(path)") }
            var found: Value?
            var child = index + 1
            let end = Int(node.after)
            while child < end {
                let value = Int(document.nodes[child].after)
                if document.keyEquals(child, wanted) {
                    guard found == nil else { throw .duplicate("\(key)") }
                    found = Value(document: document, index: value, path: key)
                }
                child = Int(document.nodes[value].after)
            }
            return found
        }

        /// The value under `key`, which must be there.
        package func member(_ key: StaticString) throws(Failure) -> Value {
            guard let value = try optional(key) else { throw .missing("\(key)") }
            return value
        }

        /// Every member of an object, in document order; a key given twice is refused.
        package func members() throws(Failure) -> [(key: String, value: Value)] {
            guard kind == .object else { throw .wrongType("\(path)") }
            var result: [(key: String, value: Value)] = []
            var seen: Set<String> = []
            var child = index + 1
            while child < Int(node.after) {
                let key = document.text(child)
                let value = Int(document.nodes[child].after)
                guard seen.insert(key).inserted else { throw .duplicate("\(path) member") }
                result.append((key, Value(document: document, index: value, path: path)))
                child = Int(document.nodes[value].after)
            }
            return result
        }

        /// Every element of an array.
        package func elements() throws(Failure) -> [Value] {
            guard kind == .array else { throw .wrongType("\(path)") }
            var result: [Value] = []
            var child = index + 1
            while child < Int(node.after) {
                result.append(Value(document: document, index: child, path: path))
                child = Int(document.nodes[child].after)
            }
            return result
        }

        /// A public string's unescaped UTF-8.
        package func bytes() throws(Failure) -> [UInt8] {
            guard kind == .string else { throw .wrongType("\(path)") }
            let node = self.node
            let raw = UnsafeRawBufferPointer(rebasing: document.bytes[Int(node.start) + 1..<Int(node.end) - 1])
            if !node.escaped { return Array(raw) }
            var unescaped: [UInt8] = []
            JSONDocument.unescape(raw) { unescaped.append(contentsOf: $0) }
            return unescaped
        }

        /// A public string (never a secret: use `secret`).
        package func string() throws(Failure) -> String {
            guard kind == .string else { throw .wrongType("\(path)") }
            return document.text(index)
        }

        /// A string straight into `SecretBytes`, at most `maxBytes` once unescaped.
        package func secret(maxBytes: Int) throws(Failure) -> SecretBytes {
            guard kind == .string else { throw .wrongType("\(path)") }
            let node = self.node
            let raw = UnsafeRawBufferPointer(
                rebasing: document.bytes[Int(node.start) + 1..<Int(node.end) - 1])
            if !node.escaped {
                guard raw.count <= maxBytes else { throw .tooLong("\(path)") }
                return SecretBytes(raw)
            }
            // Unescaping only shortens, so the raw length bounds the buffer: it never grows (and
            // never leaves an unwiped copy behind).
            let buffer = WipedBuffer(capacity: raw.count)
            var tooLong = false
            JSONDocument.unescape(raw) { chunk in
                guard !tooLong, buffer.count + chunk.count <= maxBytes else {
                    tooLong = true
                    return
                }
                buffer.append(bytes: chunk)
            }
            if tooLong { throw .tooLong("\(path)") }
            return buffer.withUnsafeBytes { SecretBytes($0) }
        }

        package func bool() throws(Failure) -> Bool {
            switch kind {
            case .true: true
            case .false: false
            default: throw .wrongType("\(path)")
            }
        }

        /// The one lenient number reading for Vault's integers: an integer literal exactly, or a
        /// number with a fraction or exponent (`1.7e9`) truncated toward zero; anything outside
        /// Int64 is refused, not clamped or wrapped.
        package func int64() throws(Failure) -> Int64 {
            guard kind == .number else { throw .wrongType("\(path)") }
            let node = self.node
            guard
                let value = JSONDocument.integer(
                    UnsafeRawBufferPointer(
                        rebasing: document.bytes[Int(node.start)..<Int(node.end)]))
            else { throw .outOfRange("\(path)") }
            return value
        }
    }

    // MARK: reading tokens

    /// Compares the key node at `index` with `wanted` (unescaped when it holds an escape).
    fileprivate func keyEquals(_ index: Int, _ wanted: UnsafeRawBufferPointer) -> Bool {
        let node = nodes[index]
        let raw = UnsafeRawBufferPointer(rebasing: bytes[Int(node.start) + 1..<Int(node.end) - 1])
        if !node.escaped { return raw.elementsEqual(wanted) }
        var unescaped: [UInt8] = []
        Self.unescape(raw) { unescaped.append(contentsOf: $0) }
        return unescaped.elementsEqual(wanted)
    }

    /// A public string node's text.
    fileprivate func text(_ index: Int) -> String {
        let node = nodes[index]
        let raw = UnsafeRawBufferPointer(rebasing: bytes[Int(node.start) + 1..<Int(node.end) - 1])
        if !node.escaped { return String(decoding: raw, as: UTF8.self) }
        var unescaped: [UInt8] = []
        unescaped.reserveCapacity(raw.count)
        Self.unescape(raw) { unescaped.append(contentsOf: $0) }
        return String(decoding: unescaped, as: UTF8.self)
    }

    /// The bytes of an already validated string body with its escapes resolved, in chunks: runs
    /// of plain bytes as slices of the input, each escape as its UTF-8.
    static func unescape(_ raw: UnsafeRawBufferPointer, _ emit: (UnsafeRawBufferPointer) -> Void) {
        var index = 0
        var runStart = 0
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in 0..<4 { value = value << 4 | UInt32(hexDigit(raw[at + offset]) ?? 0) }
            return value
        }
        while index < raw.count {
            guard raw[index] == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            if runStart < index { emit(UnsafeRawBufferPointer(rebasing: raw[runStart..<index])) }
            let escape = raw[index + 1]
            index += 2
            var scalar: UInt32
            switch escape {
            case UInt8(ascii: "b"): scalar = 0x08
            case UInt8(ascii: "f"): scalar = 0x0C
            case UInt8(ascii: "n"): scalar = 0x0A
            case UInt8(ascii: "r"): scalar = 0x0D
            case UInt8(ascii: "t"): scalar = 0x09
            case UInt8(ascii: "u"):
                scalar = hex4(index)
                index += 4
                if (0xD800...0xDBFF).contains(scalar) {
                    let low = hex4(index + 2)
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
            default: scalar = UInt32(escape)  // " \ /
            }
            var scratch: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &scratch) { out in
                let count = utf8(scalar, into: out.bindMemory(to: UInt8.self))
                emit(UnsafeRawBufferPointer(rebasing: out[0..<count]))
                // The scalar may be part of a secret.
                out.initializeMemory(as: UInt8.self, repeating: 0)
            }
            runStart = index
        }
        if runStart < raw.count { emit(UnsafeRawBufferPointer(rebasing: raw[runStart..<raw.count])) }
    }

    private static func utf8(_ scalar: UInt32, into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        switch scalar {
        case 0..<0x80:
            out[0] = UInt8(scalar)
            return 1
        case 0x80..<0x800:
            out[0] = UInt8(0xC0 | scalar >> 6)
            out[1] = UInt8(0x80 | scalar & 0x3F)
            return 2
        case 0x800..<0x10000:
            out[0] = UInt8(0xE0 | scalar >> 12)
            out[1] = UInt8(0x80 | (scalar >> 6) & 0x3F)
            out[2] = UInt8(0x80 | scalar & 0x3F)
            return 3
        default:
            out[0] = UInt8(0xF0 | scalar >> 18)
            out[1] = UInt8(0x80 | (scalar >> 12) & 0x3F)
            out[2] = UInt8(0x80 | (scalar >> 6) & 0x3F)
            out[3] = UInt8(0x80 | scalar & 0x3F)
            return 4
        }
    }

    fileprivate static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// An already validated number token as Int64 (see `Value.int64`); nil when out of range.
    static func integer(_ token: UnsafeRawBufferPointer) -> Int64? {
        if token.contains(where: { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            return fraction(token)
        }
        let negative = token.first == UInt8(ascii: "-")
        var value: Int64 = 0
        for byte in token.dropFirst(negative ? 1 : 0) {
            let digit = Int64(byte - 0x30)
            let (times, overflowA) = value.multipliedReportingOverflow(by: 10)
            // Accumulated with the sign, so that Int64.min is reachable.
            let (next, overflowB) =
                negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            if overflowA || overflowB { return nil }
            value = next
        }
        return value
    }

    /// A number with a fraction or exponent, truncated toward zero if finite and inside Int64.
    private static func fraction(_ token: UnsafeRawBufferPointer) -> Int64? {
        guard let double = Double(String(decoding: token, as: UTF8.self)), double.isFinite,
            double > -9.223_372_036_854_775e18, double < 9.223_372_036_854_775e18
        else { return nil }
        return Int64(double)
    }
}

// MARK: the validating parser

extension JSONDocument {
    fileprivate struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        /// Out of input where more was needed: truncated; anything else wrong: malformed.
        private func unexpected() -> Failure { index >= bytes.count ? .truncated : .malformed }

        private mutating func expect(_ byte: UInt8) throws(Failure) {
            guard current == byte else { throw unexpected() }
            index += 1
        }

        mutating func value(depth: Int, into nodes: inout [Node]) throws(Failure) {
            guard let byte = current else { throw .truncated }
            switch byte {
            case UInt8(ascii: "{"): try container(object: true, depth: depth + 1, into: &nodes)
            case UInt8(ascii: "["): try container(object: false, depth: depth + 1, into: &nodes)
            case UInt8(ascii: "\""): try string(into: &nodes)
            case UInt8(ascii: "t"): try literal("true", .true, into: &nodes)
            case UInt8(ascii: "f"): try literal("false", .false, into: &nodes)
            case UInt8(ascii: "n"): try literal("null", .null, into: &nodes)
            default: try number(into: &nodes)
            }
        }

        private mutating func container(object: Bool, depth: Int, into nodes: inout [Node]) throws(Failure) {
            guard depth <= JSONDocument.maxDepth else { throw .tooDeep }
            let start = index
            let slot = nodes.count
            nodes.append(Node(kind: object ? .object : .array, escaped: false, start: Int32(start), end: 0, after: 0))
            index += 1
            let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
            skipWhitespace()
            if current == close {
                index += 1
            } else {
                while true {
                    skipWhitespace()
                    if object {
                        guard current == UInt8(ascii: "\"") else { throw unexpected() }
                        try string(into: &nodes)
                        skipWhitespace()
                        try expect(UInt8(ascii: ":"))
                        skipWhitespace()
                    }
                    try value(depth: depth, into: &nodes)
                    skipWhitespace()
                    if current == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(close)
                    break
                }
            }
            nodes[slot].end = Int32(index)
            nodes[slot].after = Int32(nodes.count)
        }

        private mutating func literal(_ text: StaticString, _ kind: Kind, into nodes: inout [Node]) throws(Failure) {
            let start = index
            for offset in 0..<text.utf8CodeUnitCount {
                guard let byte = current else { throw .truncated }
                guard byte == text.utf8Start[offset] else { throw .malformed }
                index += 1
            }
            nodes.append(leaf(kind, start, at: nodes.count))
        }

        /// A value without children; `position` is where it goes in `nodes`.
        private func leaf(_ kind: Kind, _ start: Int, at position: Int, escaped: Bool = false) -> Node {
            Node(kind: kind, escaped: escaped, start: Int32(start), end: Int32(index), after: Int32(position + 1))
        }

        private mutating func number(into nodes: inout [Node]) throws(Failure) {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current else { throw .truncated }
            guard isDigit(first) else { throw .malformed }
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
            nodes.append(leaf(.number, start, at: nodes.count))
        }

        private mutating func digits() throws(Failure) {
            guard let byte = current else { throw .truncated }
            guard isDigit(byte) else { throw .malformed }
            while let byte = current, isDigit(byte) { index += 1 }
        }

        private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        /// A string literal, validated: escapes (surrogates paired), no raw control characters,
        /// well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
        private mutating func string(into nodes: inout [Node]) throws(Failure) {
            let start = index
            index += 1
            var escaped = false
            while true {
                guard index < bytes.count else { throw .truncated }
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    nodes.append(leaf(.string, start, at: nodes.count, escaped: escaped))
                    return
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard let escape = current else { throw .truncated }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        break
                    case UInt8(ascii: "u"):
                        let scalar = try hex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            try expect(UInt8(ascii: "\\"))
                            try expect(UInt8(ascii: "u"))
                            guard (0xDC00...0xDFFF).contains(try hex4()) else { throw .malformed }
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            throw .malformed
                        }
                    default:
                        throw .malformed
                    }
                case 0x00..<0x20:
                    throw .malformed
                case 0x20..<0x80:
                    continue
                default:
                    try multibyte(byte)
                }
            }
        }

        private mutating func multibyte(_ byte: UInt8) throws(Failure) {
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
            for position in 1..<length {
                guard let next = current else { throw .truncated }
                let low: UInt8 = position == 1 ? lower : 0x80
                let high: UInt8 = position == 1 ? upper : 0xBF
                guard next >= low && next <= high else { throw .malformed }
                index += 1
            }
        }

        private mutating func hex4() throws(Failure) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = current else { throw .truncated }
                guard let digit = JSONDocument.hexDigit(byte) else { throw .malformed }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }
    }
}
