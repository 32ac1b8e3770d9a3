import FoundationEssentials
import KMSRuntime

/// The few non-secret fields of Vault's JSON answers the broker reads (secret fields: `SecretJSONField`). Everything else in a body is ignored;
/// a body is never logged.
package enum VaultJSON {
    /// `auth/<mount>/login` and `auth/token/renew-self`: the non-secret fields only. The token
    /// (`auth.client_token`) is read by `SecretJSONField` straight into `SecretBytes`.
    struct AuthResponse: Decodable {
        struct Auth: Decodable {
            var lease_duration: Int64
            var renewable: Bool
        }
        var auth: Auth?
    }

    /// `GET <mount>/keys/<name>`.
    struct KeyResponse: Decodable {
        struct KeyData: Decodable {
            var type: String
            var latest_version: Int64
            var min_decryption_version: Int64
            /// Version string to creation time in Unix seconds. Vault writes an integer for
            /// symmetric keys and an object for asymmetric ones; anything that is not a number is
            /// kept as nil so the key type can be reported instead of a decoding error.
            var keys: [String: CreationTime]
        }
        var data: KeyData
    }

    package struct CreationTime: Decodable {
        package var seconds: Int64?

        package init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let integer = try? container.decode(Int64.self) {
                seconds = integer
            } else if let double = try? container.decode(Double.self), double.isFinite,
                double >= -9.2e18, double <= 9.2e18
            {
                seconds = Int64(double)
            } else {
                seconds = nil
            }
        }
    }

    /// `POST <mount>/encrypt/<name>`.
    struct EncryptResponse: Decodable {
        struct EncryptData: Decodable {
            var ciphertext: String
            var key_version: Int64
        }
        var data: EncryptData
    }

    /// Any error answer.
    struct ErrorResponse: Decodable {
        var errors: [String]?
    }

    /// Decodes `body` without copying it into an unwiped buffer.
    package static func decode<T: Decodable>(_ type: T.Type, from body: WipedBuffer) -> T? {
        body.withUnsafeBytes { raw -> T? in
            guard let base = raw.baseAddress, raw.count > 0 else { return nil }
            let data = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: raw.count, deallocator: .none)
            return try? JSONDecoder().decode(T.self, from: data)
        }
    }

    /// The `errors` array of an error answer, or empty.
    package static func errors(in body: WipedBuffer) -> [String] {
        decode(ErrorResponse.self, from: body)?.errors ?? []
    }
}

/// Builds small JSON request bodies directly into a `WipedBuffer`, so that secrets (secret ID,
/// plaintext) are never held in an unwiped Swift `String`.
struct JSONBodyBuilder {
    let buffer: WipedBuffer
    private var first = true

    init(capacity: Int = 256) {
        buffer = WipedBuffer(capacity: capacity)
        buffer.append(byte: UInt8(ascii: "{"))
    }

    mutating func string(_ key: String, _ value: String) {
        self.key(key)
        appendEscaped(UnsafeRawBufferPointer?.none, text: value)
    }

    mutating func secret(_ key: String, _ value: SecretBytes) {
        self.key(key)
        value.withUnsafeBytes { appendEscaped($0, text: nil) }
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
        appendEscaped(nil, text: key)
        buffer.append(byte: UInt8(ascii: ":"))
    }

    /// A JSON string literal (RFC 8259 section 7): quote, backslash and control characters escaped.
    private func appendEscaped(_ raw: UnsafeRawBufferPointer?, text: String?) {
        buffer.append(byte: UInt8(ascii: "\""))
        func emit(_ byte: UInt8) {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.append(byte: UInt8(ascii: "\\"))
                buffer.append(byte: byte)
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                buffer.append("\\u00")
                buffer.append(byte: hex[Int(byte >> 4)])
                buffer.append(byte: hex[Int(byte & 0x0F)])
            default:
                buffer.append(byte: byte)
            }
        }
        if let raw { for byte in raw { emit(byte) } }
        if let text { for byte in text.utf8 { emit(byte) } }
        buffer.append(byte: UInt8(ascii: "\""))
    }
}

/// Standard base64 with padding (RFC 4648 section 4), written straight into a wiped buffer.
package enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8], into buffer: WipedBuffer) {
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { buffer.append(byte: alphabet[Int((value >> UInt32(shift)) & 0x3F)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let value = UInt32(bytes[index]) << 16
            buffer.append(byte: alphabet[Int((value >> 18) & 0x3F)])
            buffer.append(byte: alphabet[Int((value >> 12) & 0x3F)])
            buffer.append("==")
        } else if rest == 2 {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            buffer.append(byte: alphabet[Int((value >> 18) & 0x3F)])
            buffer.append(byte: alphabet[Int((value >> 12) & 0x3F)])
            buffer.append(byte: alphabet[Int((value >> 6) & 0x3F)])
            buffer.append("=")
        }
    }

    /// True when every byte is in the standard alphabet or is `=` padding at the end.
    package static func isStandardBase64(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count % 4 == 0 else { return false }
        var sawPadding = false
        for byte in bytes {
            if byte == UInt8(ascii: "=") {
                sawPadding = true
            } else if sawPadding || !alphabet.contains(byte) {
                return false
            }
        }
        return true
    }
}
