import KMSRuntime

/// A Vault answer type read from a body by `JSONDocument` (no Foundation decoder).
package protocol VaultJSONReadable {
    init(_ json: JSONDocument.Value) throws(JSONDocument.Failure)
}

/// The few non-secret fields of Vault's JSON answers the broker reads (secret fields: `SecretJSONField`,
/// on the same reader). Everything else in a body is ignored; a body is never logged.
package enum VaultJSON {
    /// `auth/<mount>/login` and `auth/token/renew-self`: the non-secret fields only. The token
    /// (`auth.client_token`) is read by `SecretJSONField` straight into `SecretBytes`.
    struct AuthResponse: VaultJSONReadable {
        struct Auth {
            var lease_duration: Int64
            var renewable: Bool
        }
        var auth: Auth?

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            guard let auth = try json.optional("auth"), !auth.isNull else { return }
            self.auth = Auth(
                lease_duration: try auth.member("lease_duration").int64(),
                renewable: try auth.member("renewable").bool())
        }
    }

    /// `GET <mount>/keys/<name>`.
    struct KeyResponse: VaultJSONReadable {
        struct KeyData {
            var type: String
            var latest_version: Int64
            var min_decryption_version: Int64
            /// Version string to creation time in Unix seconds. Vault writes an integer for
            /// symmetric keys and an object for asymmetric ones; anything that is not a number is
            /// kept as nil so the key type can be reported instead of a decoding error.
            var keys: [String: CreationTime]
        }
        var data: KeyData

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            let data = try json.member("data")
            self.data = KeyData(
                type: try data.member("type").string(), latest_version: try data.member("latest_version").int64(),
                min_decryption_version: try data.member("min_decryption_version").int64(),
                keys: try CreationTime.map(data.member("keys")))
        }
    }

    package struct CreationTime {
        package var seconds: Int64?

        package init(_ json: JSONDocument.Value) {
            seconds = json.kind == .number ? try? json.int64() : nil
        }

        /// `keys`: version string to creation time.
        package static func map(_ json: JSONDocument.Value) throws(JSONDocument.Failure) -> [String: CreationTime] {
            var result: [String: CreationTime] = [:]
            for (version, value) in try json.members() { result[version] = CreationTime(value) }
            return result
        }
    }

    /// `POST <mount>/encrypt/<name>`.
    struct EncryptResponse: VaultJSONReadable {
        struct EncryptData {
            var ciphertext: [UInt8]
            var key_version: Int64
        }
        var data: EncryptData

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            let data = try json.member("data")
            self.data = EncryptData(
                ciphertext: try data.member("ciphertext").bytes(), key_version: try data.member("key_version").int64())
        }
    }

    /// Any error answer.
    struct ErrorResponse: VaultJSONReadable {
        var errors: [String]?

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            guard let errors = try json.optional("errors"), !errors.isNull else { return }
            var messages: [String] = []
            for element in try errors.elements() { messages.append(try element.string()) }
            self.errors = messages
        }
    }

    /// Reads `body` (lent, never copied into an unwiped buffer); nil when it is not valid JSON of
    /// that shape.
    package static func decode<T: VaultJSONReadable>(_ type: T.Type, from body: WipedBuffer) -> T? {
        try? read(type, from: body).get()
    }

    /// As `decode`, with the reason.
    package static func read<T: VaultJSONReadable>(_ type: T.Type, from body: WipedBuffer) -> Result<
        T, JSONDocument.Failure
    > {
        JSONDocument.read(body) { json throws(JSONDocument.Failure) in try T(json) }
    }

    /// The `errors` array of an error answer, or empty.
    package static func errors(in body: WipedBuffer) -> [String] {
        decode(ErrorResponse.self, from: body)?.errors ?? []
    }
}

/// Builds small JSON request bodies directly into a `WipedBuffer`, so that secrets (secret ID,
/// plaintext) are never held in an unwiped Swift `String`. Bytes go in as runs, never one by one.
struct JSONBodyBuilder {
    let buffer: WipedBuffer
    private var first = true

    init(capacity: Int = 256) {
        buffer = WipedBuffer(capacity: capacity)
        buffer.append(byte: UInt8(ascii: "{"))
    }

    mutating func string(_ key: String, _ value: String) {
        self.key(key)
        var value = value
        value.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0)) }
    }

    mutating func secret(_ key: String, _ value: SecretBytes) {
        self.key(key)
        value.withUnsafeBytes { appendEscaped($0) }
    }

    mutating func base64(_ key: String, _ value: [UInt8]) {
        self.key(key)
        buffer.append(byte: UInt8(ascii: "\""))
        Base64.encode(value, into: buffer)
        buffer.append(byte: UInt8(ascii: "\""))
    }

    mutating func integer(_ key: String, _ value: Int64) {
        self.key(key)
        buffer.append(String(value))
    }

    func finish() -> WipedBuffer {
        buffer.append(byte: UInt8(ascii: "}"))
        return buffer
    }

    private mutating func key(_ key: String) {
        if !first { buffer.append(byte: UInt8(ascii: ",")) }
        first = false
        var key = key
        key.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0)) }
        buffer.append(byte: UInt8(ascii: ":"))
    }

    /// A JSON string literal (RFC 8259 section 7): quote, backslash and control characters escaped;
    /// the runs between them are appended whole.
    private func appendEscaped(_ raw: UnsafeRawBufferPointer) {
        buffer.append(byte: UInt8(ascii: "\""))
        var runStart = 0
        for (index, byte) in raw.enumerated() {
            let escape: StaticString
            switch byte {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case 0..<0x20, 0x7F: escape = "\\u00"
            default: continue
            }
            if runStart < index { buffer.append(bytes: UnsafeRawBufferPointer(rebasing: raw[runStart..<index])) }
            buffer.append(bytes: UnsafeRawBufferPointer(start: escape.utf8Start, count: escape.utf8CodeUnitCount))
            if escape.utf8CodeUnitCount == 4 {
                let hex: StaticString = "0123456789abcdef"
                buffer.append(byte: hex.utf8Start[Int(byte >> 4)])
                buffer.append(byte: hex.utf8Start[Int(byte & 0x0F)])
            }
            runStart = index + 1
        }
        if runStart < raw.count { buffer.append(bytes: UnsafeRawBufferPointer(rebasing: raw[runStart..<raw.count])) }
        buffer.append(byte: UInt8(ascii: "\""))
    }
}

/// Standard base64 with padding (RFC 4648 section 4), written straight into a wiped buffer.
package enum Base64 {
    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    /// Encodes into a scratch buffer (wiped afterwards: the input may be a DEK seed) and appends
    /// it to `buffer` in one piece.
    static func encode(_ bytes: [UInt8], into buffer: WipedBuffer) {
        let length = (bytes.count + 2) / 3 * 4
        guard length > 0 else { return }
        let table = alphabet.utf8Start
        let out = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: length)
        defer {
            out.update(repeating: 0)
            out.deallocate()
        }
        do {
            var index = 0
            var at = 0
            func put(_ value: UInt32, _ shift: UInt32) {
                out[at] = table[Int((value >> shift) & 0x3F)]
                at += 1
            }
            while index + 3 <= bytes.count {
                let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                put(value, 18)
                put(value, 12)
                put(value, 6)
                put(value, 0)
                index += 3
            }
            let rest = bytes.count - index
            if rest > 0 {
                let value = UInt32(bytes[index]) << 16 | (rest == 2 ? UInt32(bytes[index + 1]) << 8 : 0)
                put(value, 18)
                put(value, 12)
                if rest == 2 { put(value, 6) } else { out[at] = UInt8(ascii: "="); at += 1 }
                out[at] = UInt8(ascii: "=")
                at += 1
            }
            buffer.append(bytes: UnsafeRawBufferPointer(out))
        }
    }

    /// True when every byte is in the standard alphabet or is `=` padding at the end.
    package static func isStandardBase64(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count % 4 == 0 else { return false }
        var sawPadding = false
        for byte in bytes {
            if byte == UInt8(ascii: "=") {
                sawPadding = true
            } else if sawPadding || digit(byte) == nil {
                return false
            }
        }
        return true
    }

    /// The value of one alphabet character; nil for anything else (padding included).
    static func digit(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): UInt32(byte - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): UInt32(byte - UInt8(ascii: "a") + 26)
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0") + 52)
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
