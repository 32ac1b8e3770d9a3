/// The KMS v2 messages the front reads and writes (k8s.io/kms apis/v2/api.proto), with a
/// hand-written codec instead of generated SwiftProtobuf types: the front links no protobuf
/// library (its idle memory, docs/benchmarks.md). Requests decode as the generated types decoded
/// them (ProtobufScanner); responses encode to the bytes SwiftProtobuf wrote (fields in number
/// order, empty ones omitted). Tests/FrontTests/KMSv2MessagesTests.swift holds both to the
/// generated types.
public enum KMSv2Messages {
    /// `EncryptRequest { bytes plaintext = 1; string uid = 2; }`
    public struct EncryptRequest: Equatable, Sendable {
        public var plaintext: [UInt8] = []
        public var uid = ""

        public init(plaintext: [UInt8] = [], uid: String = "") {
            self.plaintext = plaintext
            self.uid = uid
        }

        public init(decoding message: [UInt8]) throws(ProtobufDecodingError) {
            try KMSv2Messages.forEachField(message) { (key, scanner) throws(ProtobufDecodingError) in
                switch (key.number, key.wireType) {
                case (1, .lengthDelimited): plaintext = try scanner.bytes()
                case (2, .lengthDelimited): uid = try scanner.string(field: 2)
                default: try scanner.skip(key)
                }
            }
        }
    }

    /// `DecryptRequest { bytes ciphertext = 1; string uid = 2; string key_id = 3;
    /// map<string, bytes> annotations = 4; }`
    public struct DecryptRequest: Equatable, Sendable {
        public var ciphertext: [UInt8] = []
        public var uid = ""
        public var keyID = ""
        public var annotations: [String: [UInt8]] = [:]

        public init(
            ciphertext: [UInt8] = [], uid: String = "", keyID: String = "", annotations: [String: [UInt8]] = [:]
        ) {
            self.ciphertext = ciphertext
            self.uid = uid
            self.keyID = keyID
            self.annotations = annotations
        }

        public init(decoding message: [UInt8]) throws(ProtobufDecodingError) {
            try KMSv2Messages.forEachField(message) { (key, scanner) throws(ProtobufDecodingError) in
                switch (key.number, key.wireType) {
                case (1, .lengthDelimited): ciphertext = try scanner.bytes()
                case (2, .lengthDelimited): uid = try scanner.string(field: 2)
                case (3, .lengthDelimited): keyID = try scanner.string(field: 3)
                case (4, .lengthDelimited):
                    let entry = scanner.scanner(for: try scanner.lengthDelimited())
                    let (name, value) = try Self.annotation(entry)
                    annotations[name] = value
                default: try scanner.skip(key)
                }
            }
        }

        /// One map entry `{ string key = 1; bytes value = 2; }`; a missing key or value is empty.
        /// As in SwiftProtobuf, a key or value field of another wire type consumes only its key
        /// (what follows is read as the next key), and any other field is skipped.
        private static func annotation(
            _ entry: ProtobufScanner
        ) throws(ProtobufDecodingError) -> (String, [UInt8]) {
            var entry = entry
            var name = ""
            var value: [UInt8] = []
            while let key = try entry.innerKey() {
                switch (key.number, key.wireType) {
                case (_, .endGroup): throw .badGroup
                case (1, .lengthDelimited): name = try entry.string(field: 4)
                case (2, .lengthDelimited): value = try entry.bytes()
                case (1, _), (2, _): continue
                default: try entry.skip(key)
                }
            }
            return (name, value)
        }
    }

    /// `StatusRequest {}`: it carries nothing, but must still be a well-formed message.
    public static func validateStatusRequest(_ message: [UInt8]) throws(ProtobufDecodingError) {
        try forEachField(message) { (key, scanner) throws(ProtobufDecodingError) in try scanner.skip(key) }
    }

    /// `StatusResponse { string version = 1; string healthz = 2; string key_id = 3; }`
    public static func statusResponse(version: String, healthz: String, keyID: String) -> [UInt8] {
        var writer = ProtobufWriter(
            capacity: ProtobufWriter.fieldSize(1, count: version.utf8.count)
                + ProtobufWriter.fieldSize(2, count: healthz.utf8.count)
                + ProtobufWriter.fieldSize(3, count: keyID.utf8.count))
        writer.string(1, version)
        writer.string(2, healthz)
        writer.string(3, keyID)
        return writer.bytes
    }

    /// `EncryptResponse { bytes ciphertext = 1; string key_id = 2; map annotations = 3; }`
    /// (the plugin sets no annotations).
    public static func encryptResponse(ciphertext: [UInt8], keyID: String) -> [UInt8] {
        var writer = ProtobufWriter(
            capacity: ProtobufWriter.fieldSize(1, count: ciphertext.count)
                + ProtobufWriter.fieldSize(2, count: keyID.utf8.count))
        writer.bytes(1, ciphertext)
        writer.string(2, keyID)
        return writer.bytes
    }

    /// `DecryptResponse { bytes plaintext = 1; }`
    public static func decryptResponse(plaintext: [UInt8]) -> [UInt8] {
        var writer = ProtobufWriter(capacity: ProtobufWriter.fieldSize(1, count: plaintext.count))
        writer.bytes(1, plaintext)
        return writer.bytes
    }

    private static func forEachField(
        _ message: [UInt8], _ body: (ProtobufScanner.Key, inout ProtobufScanner) throws(ProtobufDecodingError) -> Void
    ) throws(ProtobufDecodingError) {
        var failure: ProtobufDecodingError?
        message.withUnsafeBytes { raw in
            var scanner = ProtobufScanner(raw)
            do throws(ProtobufDecodingError) {
                while let key = try scanner.topLevelKey() { try body(key, &scanner) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }
}
