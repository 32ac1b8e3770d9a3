/// The fixed 16-byte header of every broker packet (docs/PROTOCOL.md, "Framing").
///
///     0      2         3      4            8                12           16
///     | "KM" | version | type | request id | payload length | reserved 0 |
///
/// All integers are big-endian. One packet is one SOCK_SEQPACKET datagram: the kernel keeps
/// message boundaries, so a short or long read is a protocol error, never a partial message.
public struct BrokerFrame: Equatable, Sendable {
    public static let magic: (UInt8, UInt8) = (0x4B, 0x4D)  // "KM"
    public static let protocolVersion: UInt8 = 1
    public static let headerBytes = 16

    public var type: BrokerMessageType
    public var requestID: UInt32
    public var payload: [UInt8]

    public init(type: BrokerMessageType, requestID: UInt32, payload: [UInt8]) {
        self.type = type
        self.requestID = requestID
        self.payload = payload
    }

    /// Encodes the header and payload into one packet.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.headerBytes + payload.count)
        writer.u8(Self.magic.0)
        writer.u8(Self.magic.1)
        writer.u8(Self.protocolVersion)
        writer.u8(type.rawValue)
        writer.u32(requestID)
        writer.u32(UInt32(payload.count))
        writer.u32(0)
        var bytes = writer.bytes
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Decodes one packet, checking the header completely before anything looks at the payload.
    public static func decode(_ packet: [UInt8]) throws(BrokerProtocolError) -> BrokerFrame {
        guard packet.count <= Limits.maxBrokerPacketBytes else { throw .oversized(packet.count) }
        guard packet.count >= headerBytes else { throw .truncated }
        var reader = ByteReader(packet)
        guard try reader.u8() == magic.0, try reader.u8() == magic.1 else { throw .badMagic }
        let version = try reader.u8()
        guard version == protocolVersion else { throw .unsupportedVersion(version) }
        let rawType = try reader.u8()
        guard let type = BrokerMessageType(rawValue: rawType) else { throw .unknownType(rawType) }
        let requestID = try reader.u32()
        let length = try reader.u32()
        guard try reader.u32() == 0 else { throw .reservedBitsSet }
        guard Int(length) == reader.remaining else {
            throw .lengthMismatch(declared: length, actual: reader.remaining)
        }
        return BrokerFrame(type: type, requestID: requestID, payload: Array(packet[headerBytes...]))
    }
}

/// Message types (the header's type byte). Requests are even and answers odd, each answer its
/// request + 1; which answer is legal for which request is `BrokerProtocol.pairs`, not arithmetic.
public enum BrokerMessageType: UInt8, Sendable, CaseIterable {
    case helloRequest = 0x02
    case helloAnswer = 0x03
    case statusRequest = 0x04
    case statusAnswer = 0x05
    case encryptRequest = 0x06
    case encryptAnswer = 0x07
    case decryptRequest = 0x08
    case decryptAnswer = 0x09
    case metricsRequest = 0x0A
    case metricsAnswer = 0x0B
    case heartbeatRequest = 0x0C
    case heartbeatAnswer = 0x0D

    /// A type the front sends (a request column of `BrokerProtocol.pairs`).
    public var isRequest: Bool { BrokerProtocol.pairs.contains { $0.request == self } }

    /// The one answer type legal for a request type (nil for an answer type).
    public var answerType: BrokerMessageType? { BrokerProtocol.pairs.first { $0.request == self }?.answer }
}
