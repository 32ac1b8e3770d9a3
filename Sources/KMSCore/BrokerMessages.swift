/// The typed messages of broker protocol v1 (docs/PROTOCOL.md, "Messages"). Every decoder
/// checks each field against its limit and refuses trailing bytes; there is no general-purpose
/// decoder on the privileged side.

/// HELLO, front -> broker, first message on a connection. Sent once the front is serving its
/// KMS socket, so in the spawn topology it doubles as the front's readiness report.
public struct HelloRequest: Equatable, Sendable {
    public var frontVersion: String

    public init(frontVersion: String) { self.frontVersion = frontVersion }

    public func payload() -> [UInt8] {
        var writer = ByteWriter()
        writer.field(Array(frontVersion.utf8.prefix(Limits.maxVersionStringBytes)))
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> HelloRequest {
        var reader = ByteReader(payload)
        let version = try reader.field(limit: Limits.maxVersionStringBytes, name: "front_version")
        try reader.finish()
        return HelloRequest(frontVersion: try utf8(version, name: "front_version"))
    }
}

/// HELLO answer: the broker's version and the in-flight limit it enforces on this connection.
public struct HelloAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode
    public var brokerVersion: String
    public var maxInFlight: UInt32

    public init(code: BrokerErrorCode, brokerVersion: String = "", maxInFlight: UInt32 = 0) {
        self.code = code
        self.brokerVersion = brokerVersion
        self.maxInFlight = maxInFlight
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(code.rawValue)
        guard code == .ok else { return writer.bytes }
        writer.field(Array(brokerVersion.utf8.prefix(Limits.maxVersionStringBytes)))
        writer.u32(maxInFlight)
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> HelloAnswer {
        var reader = ByteReader(payload)
        let code = try answerCode(&reader)
        guard code == .ok else { try reader.finish(); return HelloAnswer(code: code) }
        let version = try reader.field(limit: Limits.maxVersionStringBytes, name: "broker_version")
        let maxInFlight = try reader.u32()
        try reader.finish()
        return HelloAnswer(
            code: code, brokerVersion: try utf8(version, name: "broker_version"), maxInFlight: maxInFlight)
    }
}

/// STATUS answer. The request has an empty payload. `healthz` is "ok" or a short reason.
public struct StatusAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode
    public var healthz: String
    public var keyID: String

    public init(code: BrokerErrorCode, healthz: String = "", keyID: String = "") {
        self.code = code
        self.healthz = healthz
        self.keyID = keyID
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(code.rawValue)
        guard code == .ok else { return writer.bytes }
        writer.field(Array(healthz.utf8.prefix(Limits.maxHealthzBytes)))
        writer.field(Array(keyID.utf8))
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> StatusAnswer {
        var reader = ByteReader(payload)
        let code = try answerCode(&reader)
        guard code == .ok else { try reader.finish(); return StatusAnswer(code: code) }
        let healthz = try reader.field(limit: Limits.maxHealthzBytes, name: "healthz")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        try reader.finish()
        return StatusAnswer(
            code: code, healthz: try utf8(healthz, name: "healthz"), keyID: try utf8(keyID, name: "key_id"))
    }
}

/// ENCRYPT, front -> broker. `deadlineMillis` is the time left of the gRPC deadline (0: none
/// given; the broker applies its own request timeout).
public struct EncryptRequest: Equatable, Sendable {
    public var deadlineMillis: UInt32
    public var uid: String
    public var plaintext: [UInt8]

    public init(deadlineMillis: UInt32, uid: String, plaintext: [UInt8]) {
        self.deadlineMillis = deadlineMillis
        self.uid = uid
        self.plaintext = plaintext
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + uid.utf8.count + plaintext.count)
        writer.u32(deadlineMillis)
        writer.field(Array(uid.utf8))
        writer.field(plaintext)
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> EncryptRequest {
        var reader = ByteReader(payload)
        let deadline = try reader.u32()
        let uid = try reader.field(limit: Limits.maxUIDBytes, name: "uid")
        let plaintext = try reader.field(limit: Limits.maxPlaintextBytes, name: "plaintext")
        try reader.finish()
        guard !plaintext.isEmpty else { throw .fieldEmpty("plaintext") }
        return EncryptRequest(deadlineMillis: deadline, uid: try utf8(uid, name: "uid"), plaintext: plaintext)
    }
}

/// ENCRYPT answer: the Vault ciphertext bytes and the key_id of the version that produced them.
public struct EncryptAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode
    public var ciphertext: [UInt8]
    public var keyID: String

    public init(code: BrokerErrorCode, ciphertext: [UInt8] = [], keyID: String = "") {
        self.code = code
        self.ciphertext = ciphertext
        self.keyID = keyID
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(code.rawValue)
        guard code == .ok else { return writer.bytes }
        writer.field(ciphertext)
        writer.field(Array(keyID.utf8))
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> EncryptAnswer {
        var reader = ByteReader(payload)
        let code = try answerCode(&reader)
        guard code == .ok else { try reader.finish(); return EncryptAnswer(code: code) }
        let ciphertext = try reader.field(limit: Limits.maxCiphertextBytes, name: "ciphertext")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        try reader.finish()
        guard !ciphertext.isEmpty else { throw .fieldEmpty("ciphertext") }
        guard !keyID.isEmpty else { throw .fieldEmpty("key_id") }
        return EncryptAnswer(code: code, ciphertext: ciphertext, keyID: try utf8(keyID, name: "key_id"))
    }
}

/// DECRYPT, front -> broker.
public struct DecryptRequest: Equatable, Sendable {
    public var deadlineMillis: UInt32
    public var uid: String
    public var keyID: String
    public var ciphertext: [UInt8]

    public init(deadlineMillis: UInt32, uid: String, keyID: String, ciphertext: [UInt8]) {
        self.deadlineMillis = deadlineMillis
        self.uid = uid
        self.keyID = keyID
        self.ciphertext = ciphertext
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter(capacity: 10 + uid.utf8.count + keyID.utf8.count + ciphertext.count)
        writer.u32(deadlineMillis)
        writer.field(Array(uid.utf8))
        writer.field(Array(keyID.utf8))
        writer.field(ciphertext)
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> DecryptRequest {
        var reader = ByteReader(payload)
        let deadline = try reader.u32()
        let uid = try reader.field(limit: Limits.maxUIDBytes, name: "uid")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        let ciphertext = try reader.field(limit: Limits.maxCiphertextBytes, name: "ciphertext")
        try reader.finish()
        guard !keyID.isEmpty else { throw .fieldEmpty("key_id") }
        guard !ciphertext.isEmpty else { throw .fieldEmpty("ciphertext") }
        return DecryptRequest(
            deadlineMillis: deadline, uid: try utf8(uid, name: "uid"), keyID: try utf8(keyID, name: "key_id"),
            ciphertext: ciphertext)
    }
}

/// DECRYPT answer: the plaintext.
public struct DecryptAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode
    public var plaintext: [UInt8]

    public init(code: BrokerErrorCode, plaintext: [UInt8] = []) {
        self.code = code
        self.plaintext = plaintext
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(code.rawValue)
        guard code == .ok else { return writer.bytes }
        writer.field(plaintext)
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> DecryptAnswer {
        var reader = ByteReader(payload)
        let code = try answerCode(&reader)
        guard code == .ok else { try reader.finish(); return DecryptAnswer(code: code) }
        let plaintext = try reader.field(limit: Limits.maxPlaintextBytes, name: "plaintext")
        try reader.finish()
        return DecryptAnswer(code: code, plaintext: plaintext)
    }
}

/// HEARTBEAT answer (the request is empty): proves the broker's event loop is turning.
public struct HeartbeatAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode

    public init(code: BrokerErrorCode) { self.code = code }

    public func payload() -> [UInt8] { [code.rawValue] }

    public static func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> HeartbeatAnswer {
        var reader = ByteReader(payload)
        let code = try answerCode(&reader)
        try reader.finish()
        return HeartbeatAnswer(code: code)
    }
}

/// Requests with no fields (STATUS, HEARTBEAT, METRICS) must have an empty payload.
public func decodeEmptyRequest(_ payload: [UInt8]) throws(BrokerProtocolError) {
    guard payload.isEmpty else { throw .trailingBytes(payload.count) }
}

private func answerCode(_ reader: inout ByteReader) throws(BrokerProtocolError) -> BrokerErrorCode {
    let raw = try reader.u8()
    guard let code = BrokerErrorCode(rawValue: raw) else { throw .unknownErrorCode(raw) }
    return code
}

private func utf8(_ bytes: [UInt8], name: StaticString) throws(BrokerProtocolError) -> String {
    guard let string = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8(name) }
    return string
}
