import KMSCore
import Testing

/// The METRICS answer codec: exact layout, strict decoding.
struct MetricsAnswerTests {
    /// A METRICS answer payload decoded through the protocol's one entry point for answers.
    func decode(_ payload: [UInt8]) throws(BrokerProtocolError) -> MetricsAnswer {
        guard
            case .metrics(let answer) = try BrokerAnswer.decode(
                BrokerFrame(type: .metricsAnswer, requestID: 1, payload: payload), answering: .metricsRequest)
        else { throw .unexpectedDirection(BrokerMessageType.metricsAnswer.rawValue) }
        return answer
    }

    @Test func okAnswerRoundTripsEveryMetricID() throws {
        var values: [BrokerMetricID: UInt64] = [:]
        for (index, id) in BrokerMetricID.allCases.enumerated() { values[id] = UInt64(index) << 40 | 7 }
        let answer = MetricsAnswer(code: .ok, opensslVersion: "OpenSSL 3.0.15 3 Sep 2024", values: values)
        #expect(try decode(answer.payload()) == answer)
    }

    @Test func everyMetricIDFitsUnderTheEntryCap() {
        #expect(BrokerMetricID.allCases.count <= Limits.maxMetricsEntries)
        let full = MetricsAnswer(
            code: .ok, opensslVersion: String(repeating: "x", count: 64),
            values: Dictionary(uniqueKeysWithValues: BrokerMetricID.allCases.map { ($0, UInt64.max) }))
        #expect(BrokerFrame.headerBytes + full.payload().count <= Limits.maxBrokerPacketBytes)
    }

    @Test func layoutIsCodeVersionCountThenIdValuePairs() {
        let answer = MetricsAnswer(code: .ok, opensslVersion: "v", values: [.tokenValid: 0x0102_0304_0506_0708])
        #expect(answer.payload() == [0, 0, 1, 0x76, 0, 1, 0x02, 0x01, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func errorAnswerIsTheCodeAlone() throws {
        #expect(MetricsAnswer(code: .notReady).payload() == [BrokerErrorCode.notReady.rawValue])
        #expect(try decode([BrokerErrorCode.internalError.rawValue]).code == .internalError)
    }

    @Test func unknownMetricIDIsRefused() {
        let payload: [UInt8] = [0, 0, 0, 0, 1, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1]
        #expect(throws: BrokerProtocolError.unknownMetricID(0xFFFF)) { try decode(payload) }
    }

    @Test func repeatedMetricIDIsRefused() {
        let pair: [UInt8] = [0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 1]
        let payload: [UInt8] = [0, 0, 0, 0, 2] + pair + pair
        #expect(throws: BrokerProtocolError.duplicateMetricID(0x0201)) { try decode(payload) }
    }

    @Test func countAboveTheCapIsRefusedBeforeReadingEntries() {
        let over = UInt16(Limits.maxMetricsEntries + 1)
        let payload: [UInt8] = [0, 0, 0, UInt8(over >> 8), UInt8(over & 0xFF)]
        #expect(throws: BrokerProtocolError.fieldTooLong("metrics")) { try decode(payload) }
    }

    @Test func truncatedAndTrailingPayloadsAreRefused() {
        let good = MetricsAnswer(code: .ok, opensslVersion: "v", values: [.tokenValid: 1]).payload()
        #expect(throws: BrokerProtocolError.truncated) { try decode(Array(good.dropLast())) }
        #expect(throws: BrokerProtocolError.trailingBytes(1)) { try decode(good + [0]) }
        #expect(throws: BrokerProtocolError.trailingBytes(1)) { try decode([4, 0]) }
    }

    @Test func u64IsBigEndian() throws {
        var writer = ByteWriter()
        writer.u64(0x1122_3344_5566_7788)
        #expect(writer.bytes == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        var reader = ByteReader(writer.bytes)
        #expect(try reader.u64() == 0x1122_3344_5566_7788)
    }
}
