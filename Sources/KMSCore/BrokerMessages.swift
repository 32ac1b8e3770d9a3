/// The typed messages of broker protocol v1 (docs/PROTOCOL.md, "Messages"). Each reader checks
/// every field against its limit; the check that no byte is left over is made once, for every
/// message, by `BrokerRequest.decode` / `BrokerAnswer.decode` (BrokerProtocol.swift), the only
/// entry points. There is no general-purpose decoder on the privileged side.

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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let version = try reader.field(limit: Limits.maxVersionStringBytes, name: "front_version")
        self = HelloRequest(frontVersion: try utf8(version, name: "front_version"))
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let code = try answerCode(&reader)
        guard code == .ok else {
            self = HelloAnswer(code: code)
            return
        }
        let version = try reader.field(limit: Limits.maxVersionStringBytes, name: "broker_version")
        let maxInFlight = try reader.u32()
        self = HelloAnswer(
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let code = try answerCode(&reader)
        guard code == .ok else {
            self = StatusAnswer(code: code)
            return
        }
        let healthz = try reader.field(limit: Limits.maxHealthzBytes, name: "healthz")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        self = StatusAnswer(
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let deadline = try reader.u32()
        let uid = try reader.field(limit: Limits.maxUIDBytes, name: "uid")
        let plaintext = try reader.field(limit: Limits.maxPlaintextBytes, name: "plaintext")
        guard !plaintext.isEmpty else { throw .fieldEmpty("plaintext") }
        self = EncryptRequest(deadlineMillis: deadline, uid: try utf8(uid, name: "uid"), plaintext: plaintext)
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let code = try answerCode(&reader)
        guard code == .ok else {
            self = EncryptAnswer(code: code)
            return
        }
        let ciphertext = try reader.field(limit: Limits.maxCiphertextBytes, name: "ciphertext")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        guard !ciphertext.isEmpty else { throw .fieldEmpty("ciphertext") }
        guard !keyID.isEmpty else { throw .fieldEmpty("key_id") }
        self = EncryptAnswer(code: code, ciphertext: ciphertext, keyID: try utf8(keyID, name: "key_id"))
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let deadline = try reader.u32()
        let uid = try reader.field(limit: Limits.maxUIDBytes, name: "uid")
        let keyID = try reader.field(limit: Limits.maxKeyIDBytes, name: "key_id")
        let ciphertext = try reader.field(limit: Limits.maxCiphertextBytes, name: "ciphertext")
        guard !keyID.isEmpty else { throw .fieldEmpty("key_id") }
        guard !ciphertext.isEmpty else { throw .fieldEmpty("ciphertext") }
        self = DecryptRequest(
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

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let code = try answerCode(&reader)
        guard code == .ok else {
            self = DecryptAnswer(code: code)
            return
        }
        let plaintext = try reader.field(limit: Limits.maxPlaintextBytes, name: "plaintext")
        self = DecryptAnswer(code: code, plaintext: plaintext)
    }
}

/// HEARTBEAT answer (the request is empty): proves the broker's event loop is turning.
public struct HeartbeatAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode

    public init(code: BrokerErrorCode) { self.code = code }

    public func payload() -> [UInt8] { [code.rawValue] }

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let code = try answerCode(&reader)
        self = HeartbeatAnswer(code: code)
    }
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
