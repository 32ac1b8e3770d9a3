import KMSCore

/// The three KMS v2 message pairs the probe sends and reads, with a hand-written protobuf
/// encoder and decoder (k8s.io/kms apis/v2/api.proto). The broker binary carries the probe, and
/// the broker must not link the generated KMSv2API code or SwiftProtobuf, so this is the whole
/// protobuf support it has besides KMSCore's ProtobufWriter: length-delimited and varint fields,
/// unknown fields skipped, every length checked against what is left.
public enum ProbeMessages {
    /// `EncryptRequest { bytes plaintext = 1; string uid = 2; }`
    public static func encryptRequest(plaintext: [UInt8], uid: String) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.bytes(1, plaintext)
        writer.bytes(2, Array(uid.utf8))
        return writer.bytes
    }

    /// `DecryptRequest { bytes ciphertext = 1; string uid = 2; string key_id = 3; map annotations = 4; }`
    /// (the probe sends no annotations).
    public static func decryptRequest(ciphertext: [UInt8], uid: String, keyID: String) -> [UInt8] {
        var writer = ProtobufWriter()
        writer.bytes(1, ciphertext)
        writer.bytes(2, Array(uid.utf8))
        writer.bytes(3, Array(keyID.utf8))
        return writer.bytes
    }

    /// `StatusResponse { string version = 1; string healthz = 2; string key_id = 3; }`
    public struct StatusResponse: Equatable, Sendable {
        public var version = ""
        public var healthz = ""
        public var keyID = ""

        public init(version: String = "", healthz: String = "", keyID: String = "") {
            self.version = version
            self.healthz = healthz
            self.keyID = keyID
        }

        public init(decoding message: [UInt8]) throws(ProtobufError) {
            try ProtobufReader.forEachField(message) { (number, value) throws(ProtobufError) in
                switch number {
                case 1: version = try value.string()
                case 2: healthz = try value.string()
                case 3: keyID = try value.string()
                default: break
                }
            }
        }
    }

    /// `EncryptResponse { bytes ciphertext = 1; string key_id = 2; map annotations = 3; }`
    /// (annotations are read past, not kept).
    public struct EncryptResponse: Equatable, Sendable {
        public var ciphertext: [UInt8] = []
        public var keyID = ""

        public init(ciphertext: [UInt8] = [], keyID: String = "") {
            self.ciphertext = ciphertext
            self.keyID = keyID
        }

        public init(decoding message: [UInt8]) throws(ProtobufError) {
            try ProtobufReader.forEachField(message) { (number, value) throws(ProtobufError) in
                switch number {
                case 1: ciphertext = try value.bytes()
                case 2: keyID = try value.string()
                default: break
                }
            }
        }
    }

    /// `DecryptResponse { bytes plaintext = 1; }`
    public struct DecryptResponse: Equatable, Sendable {
        public var plaintext: [UInt8] = []

        public init(plaintext: [UInt8] = []) { self.plaintext = plaintext }

        public init(decoding message: [UInt8]) throws(ProtobufError) {
            try ProtobufReader.forEachField(message) { (number, value) throws(ProtobufError) in
                if number == 1 { plaintext = try value.bytes() }
            }
        }
    }
}

/// Why a message did not decode.
public enum ProtobufError: Error, Equatable, Sendable {
    case truncated
    case malformedVarint
    case invalidWireType(UInt8)
    case invalidFieldNumber
    case wrongWireType(field: Int)
    case invalidUTF8(field: Int)
}

/// Reads proto3 fields one at a time; never traps on hostile input.
enum ProtobufReader {
    /// One field's value as it appears on the wire.
    enum Value {
        case varint(UInt64)
        case fixed64
        case fixed32
        case lengthDelimited([UInt8])

        func bytes() throws(ProtobufError) -> [UInt8] {
            guard case .lengthDelimited(let value) = self else { throw .wrongWireType(field: 0) }
            return value
        }

        func string() throws(ProtobufError) -> String {
            let value = try bytes()
            guard let text = String(validating: value, as: UTF8.self) else { throw .invalidUTF8(field: 0) }
            return text
        }
    }

    static func forEachField(
        _ message: [UInt8], _ body: (Int, Value) throws(ProtobufError) -> Void
    ) throws(ProtobufError) {
        var offset = 0
        while offset < message.count {
            let key = try varint(message, &offset)
            let wireType = UInt8(key & 7)
            let number = key >> 3
            guard number >= 1, number <= 536_870_911 else { throw .invalidFieldNumber }
            let value: Value
            switch wireType {
            case 0: value = .varint(try varint(message, &offset))
            case 1:
                guard message.count - offset >= 8 else { throw .truncated }
                offset += 8
                value = .fixed64
            case 2:
                let length = try varint(message, &offset)
                guard length <= UInt64(message.count - offset) else { throw .truncated }
                value = .lengthDelimited(Array(message[offset..<offset + Int(length)]))
                offset += Int(length)
            case 5:
                guard message.count - offset >= 4 else { throw .truncated }
                offset += 4
                value = .fixed32
            default: throw .invalidWireType(wireType)
            }
            do {
                try body(Int(number), value)
            } catch ProtobufError.wrongWireType(_) {
                throw .wrongWireType(field: Int(number))
            } catch ProtobufError.invalidUTF8(_) {
                throw .invalidUTF8(field: Int(number))
            }
        }
    }

    static func varint(_ bytes: [UInt8], _ offset: inout Int) throws(ProtobufError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw .truncated }
            let byte = bytes[offset]
            offset += 1
            guard shift < 64, shift < 63 || byte <= 1 else { throw .malformedVarint }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }
}
