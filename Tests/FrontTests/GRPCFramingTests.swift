import KMSCore
import Testing

@testable import Front

struct GRPCFramingTests {
    static func prefix(flag: UInt8 = 0, length: Int) -> [UInt8] {
        [flag, UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
    }

    @Test("frame writes a zero flag and the big-endian length")
    func frameWritesPrefix() {
        #expect(GRPCFraming.frame([1, 2, 3]) == [0, 0, 0, 0, 3, 1, 2, 3])
        #expect(GRPCFraming.frame([]) == [0, 0, 0, 0, 0])
        #expect(GRPCFraming.frame([UInt8](repeating: 7, count: 0x1_0203)).prefix(5) == [0, 0, 1, 2, 3])
    }

    @Test("a message split at every byte boundary is reassembled")
    func reassemblesByteByByte() throws {
        let message: [UInt8] = Array(0..<200).map { UInt8($0) }
        var reader = GRPCMessageReader()
        for byte in GRPCFraming.frame(message) {
            #expect(!reader.isComplete)
            try reader.append([byte])
        }
        #expect(reader.isComplete)
        #expect(try reader.finish() == message)
    }

    @Test("an empty message is a valid message")
    func emptyMessage() throws {
        var reader = GRPCMessageReader()
        try reader.append([0, 0, 0, 0, 0])
        #expect(try reader.finish() == [])
    }

    @Test("the compressed flag is refused with INTERNAL on the prefix")
    func compressedFlag() {
        var reader = GRPCMessageReader()
        #expect(throws: GRPCStatus(.internal, "compressed messages not supported")) {
            try reader.append(Self.prefix(flag: 1, length: 3))
        }
    }

    @Test("a flag other than 0 or 1 is refused with INTERNAL")
    func invalidFlag() {
        var reader = GRPCMessageReader()
        #expect(throws: GRPCStatus(.internal, "invalid message flag")) {
            try reader.append(Self.prefix(flag: 2, length: 0))
        }
    }

    @Test("a declared length above the limit is RESOURCE_EXHAUSTED before any of the body arrives")
    func oversizeOnPrefix() {
        var reader = GRPCMessageReader()
        #expect(throws: GRPCStatus(.resourceExhausted, "request message too large")) {
            try reader.append(Self.prefix(length: Limits.maxGRPCMessageBytes + 1))
        }
        var huge = GRPCMessageReader()
        #expect(throws: GRPCStatus(.resourceExhausted, "request message too large")) {
            try huge.append([0, 0xFF, 0xFF, 0xFF, 0xFF])
        }
    }

    @Test("a message of exactly the limit is accepted")
    func exactlyTheLimit() throws {
        var reader = GRPCMessageReader()
        try reader.append(GRPCFraming.frame([UInt8](repeating: 1, count: Limits.maxGRPCMessageBytes)))
        #expect(try reader.finish().count == Limits.maxGRPCMessageBytes)
    }

    @Test(
        "a truncated message or prefix is INTERNAL at end of stream",
        arguments: [[0, 0, 0], [0, 0, 0, 0, 3, 1, 2]] as [[UInt8]])
    func truncated(bytes: [UInt8]) throws {
        var reader = GRPCMessageReader()
        try reader.append(bytes)
        #expect(throws: GRPCStatus(.internal, "truncated request message")) { try reader.finish() }
    }

    @Test("no message at all is INTERNAL at end of stream")
    func missing() {
        #expect(throws: GRPCStatus(.internal, "missing request message")) { try GRPCMessageReader().finish() }
    }

    @Test("bytes after the one message are INTERNAL at once, in the same chunk or a later one")
    func trailingBytes() throws {
        var sameChunk = GRPCMessageReader()
        #expect(throws: GRPCMessageReader.trailingBytes) { try sameChunk.append(GRPCFraming.frame([1]) + [0]) }
        var laterChunk = GRPCMessageReader()
        try laterChunk.append(GRPCFraming.frame([1]))
        #expect(throws: GRPCMessageReader.trailingBytes) { try laterChunk.append(GRPCFraming.frame([2])) }
    }
}

/// Issue 13 finding 7: the reader does not reserve the declared length before the bytes arrive
/// (520 KB of client traffic declaring large messages grew the front's VmSize by 418 MB).
struct GRPCReaderReservationTests {
    @Test func aDeclaredLengthReservesNothingUntilTheBytesArrive() throws {
        let limit = Limits.maxGRPCMessageBytes
        var reader = GRPCMessageReader(limit: limit)
        let length = UInt32(limit)
        try reader.append([
            0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), 7,
        ])
        #expect(!reader.isComplete)
        #expect(reader.bufferedCapacity < 1024, "capacity \(reader.bufferedCapacity) for 1 byte received")
    }
}
