import Testing

@testable import KMSCore

struct BrokerFrameTests {
    private func packet(type: UInt8 = 0x04, id: UInt32 = 7, payload: [UInt8] = [], declared: UInt32? = nil) -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(0x4B)
        writer.u8(0x4D)
        writer.u8(1)
        writer.u8(type)
        writer.u32(id)
        writer.u32(declared ?? UInt32(payload.count))
        writer.u32(0)
        return writer.bytes + payload
    }

    @Test func encodedFrameDecodesToTheSameTypeIdAndPayload() throws {
        let frame = BrokerFrame(type: .encryptRequest, requestID: 0xDEAD_BEEF, payload: [1, 2, 3])
        let bytes = frame.encoded()
        #expect(bytes.count == BrokerFrame.headerBytes + 3)
        #expect(try BrokerFrame.decode(bytes) == frame)
    }

    @Test func headerIsBigEndianWithMagicVersionAndZeroReserved() {
        let bytes = BrokerFrame(type: .statusRequest, requestID: 0x0102_0304, payload: [9]).encoded()
        #expect(Array(bytes[0..<16]) == [0x4B, 0x4D, 1, 0x04, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 0])
    }

    @Test func packetShorterThanTheHeaderIsTruncated() {
        #expect(throws: BrokerProtocolError.truncated) { try BrokerFrame.decode(Array(packet().prefix(15))) }
        #expect(throws: BrokerProtocolError.truncated) { try BrokerFrame.decode([]) }
    }

    @Test func packetAboveTheCapIsOversizedBeforeAnyParsing() {
        let big = [UInt8](repeating: 0, count: Limits.maxBrokerPacketBytes + 1)
        #expect(throws: BrokerProtocolError.oversized(Limits.maxBrokerPacketBytes + 1)) { try BrokerFrame.decode(big) }
    }

    @Test func declaredLengthMustMatchTheBytesThatFollow() {
        #expect(throws: BrokerProtocolError.lengthMismatch(declared: 5, actual: 4)) {
            try BrokerFrame.decode(packet(payload: [1, 2, 3, 4], declared: 5))
        }
        #expect(throws: BrokerProtocolError.lengthMismatch(declared: 1, actual: 2)) {
            try BrokerFrame.decode(packet(payload: [1, 2], declared: 1))
        }
    }

    @Test func badMagicVersionTypeAndReservedBytesAreRefused() {
        var bad = packet()
        bad[0] = 0x00
        #expect(throws: BrokerProtocolError.badMagic) { try BrokerFrame.decode(bad) }
        bad = packet()
        bad[2] = 2
        #expect(throws: BrokerProtocolError.unsupportedVersion(2)) { try BrokerFrame.decode(bad) }
        #expect(throws: BrokerProtocolError.unknownType(0x40)) { try BrokerFrame.decode(packet(type: 0x40)) }
        bad = packet()
        bad[15] = 1
        #expect(throws: BrokerProtocolError.reservedBitsSet) { try BrokerFrame.decode(bad) }
    }

    @Test func requestsAreEvenAndAnswersAreTheirRequestPlusOne() {
        for type in BrokerMessageType.allCases where type.isRequest {
            #expect(type.rawValue % 2 == 0)
            #expect(type.answerType?.rawValue == type.rawValue + 1)
        }
        #expect(BrokerMessageType.statusAnswer.answerType == nil)
    }
}
