import Testing

@testable import KMSCore

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The pairing table of broker protocol v1, and Tests/e2e/kmstest/brokerproto.py (the fake broker and
/// fake front of the e2e suites) held to it: a number changed on one side alone fails here.
struct BrokerProtocolTableTests {
    @Test func everyMessageTypeIsInExactlyOnePairOnOneSide() {
        let requests = BrokerProtocol.pairs.map(\.request)
        let answers = BrokerProtocol.pairs.map(\.answer)
        #expect(Set(requests).count == requests.count)
        #expect(Set(answers).count == answers.count)
        #expect(Set(requests).isDisjoint(with: answers))
        #expect(Set(requests + answers) == Set(BrokerMessageType.allCases))
        for (request, answer) in BrokerProtocol.pairs {
            #expect(request.isRequest && !answer.isRequest)
            #expect(request.answerType == answer)
            #expect(BrokerProtocol.request(answeredBy: answer) == request)
        }
    }

    @Test func eachRequestEncodesWithItsOwnTypeAndAnswersPairWithIt() throws {
        let requests: [BrokerRequest] = [
            .hello(HelloRequest(frontVersion: "v")), .status,
            .encrypt(EncryptRequest(deadlineMillis: 1, uid: "u", plaintext: [1])),
            .decrypt(DecryptRequest(deadlineMillis: 1, uid: "u", keyID: "k", ciphertext: [1])), .metrics, .heartbeat,
        ]
        #expect(Set(requests.map(\.type)) == Set(BrokerProtocol.pairs.map(\.request)))
        for request in requests {
            let frame = try BrokerFrame.decode(request.encode(requestID: 7))
            #expect(frame.type == request.type && frame.requestID == 7)
            #expect(try BrokerRequest.decode(frame) == request)
            #expect(request.answerType == request.type.answerType)
        }
    }

    @Test func anAnswerIsRefusedForEveryRequestItIsNotPairedWith() throws {
        let frame = BrokerFrame(type: .statusAnswer, requestID: 1, payload: [BrokerErrorCode.notReady.rawValue])
        #expect(try BrokerAnswer.decode(frame, answering: .statusRequest) == .status(StatusAnswer(code: .notReady)))
        for (request, _) in BrokerProtocol.pairs where request != .statusRequest {
            #expect(throws: BrokerProtocolError.unpairedAnswer(answer: 0x05, request: request.rawValue)) {
                try BrokerAnswer.decode(frame, answering: request)
            }
        }
    }

    @Test func eachDirectionRefusesTheOthersTypes() {
        for (request, answer) in BrokerProtocol.pairs {
            let asAnswer = BrokerFrame(type: request, requestID: 1, payload: [])
            #expect(throws: BrokerProtocolError.unexpectedDirection(request.rawValue)) {
                try BrokerAnswer.decode(asAnswer, answering: request)
            }
            let asRequest = BrokerFrame(type: answer, requestID: 1, payload: [0])
            #expect(throws: BrokerProtocolError.unexpectedDirection(answer.rawValue)) {
                try BrokerRequest.decode(asRequest)
            }
        }
    }

    // MARK: Tests/e2e/kmstest/brokerproto.py

    /// brokerproto.py, wherever under Tests/e2e it lives.
    static func brokerproto() throws -> String {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let e2e = tests.appendingPathComponent("e2e")
        let paths = try FileManager.default.subpathsOfDirectory(atPath: e2e.path)
        guard let relative = paths.first(where: { $0 == "brokerproto.py" || $0.hasSuffix("/brokerproto.py") })
        else { throw ProtocolFileMissing() }
        return try String(contentsOfFile: e2e.appendingPathComponent(relative).path, encoding: .utf8)
    }

    struct ProtocolFileMissing: Error {}

    /// `text` without the leading and trailing characters in `set`.
    static func trim(_ text: Substring, _ set: String = " ") -> String {
        String(text.drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }

    /// `NAME = value` lines at the top level (value decimal or 0x hex).
    static func constants(_ source: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for line in source.split(separator: "\n") where !line.hasPrefix(" ") {
            let parts = line.split(separator: "=", maxSplits: 1).map { Self.trim($0) }
            guard parts.count == 2, parts[0].allSatisfy({ $0.isUppercase || $0 == "_" || $0.isNumber }) else {
                continue
            }
            let text = parts[1].split(separator: "#").first.map { Self.trim($0) } ?? ""
            let value = text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
            if let value { result[parts[0]] = value }
        }
        return result
    }

    /// The `key: value` lines of the top-level dict `name = { ... }`, as written.
    static func dictionary(_ name: String, in source: String) -> [(String, String)] {
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(of: "\(name) = {") else { return [] }
        var entries: [(String, String)] = []
        for line in lines[(start + 1)...] {
            if line.hasPrefix("}") { break }
            let parts = line.split(separator: ":", maxSplits: 1).map { Self.trim($0, " ,\"") }
            if parts.count == 2 { entries.append((parts[0], parts[1])) }
        }
        return entries
    }

    /// `helloRequest` -> `HELLO_REQUEST`.
    static func pythonName(_ type: BrokerMessageType) -> String {
        "\(type)".reduce(into: "") { name, character in
            if character.isUppercase { name += "_" }
            name += character.uppercased()
        }
    }

    @Test func brokerprotoHasTheSwiftFramingNumbers() throws {
        let constants = Self.constants(try Self.brokerproto())
        #expect(constants["VERSION"] == Int(BrokerFrame.protocolVersion))
        #expect(constants["MAX_PACKET_BYTES"] == Limits.maxBrokerPacketBytes)
    }

    @Test func brokerprotoHasExactlyTheSwiftMessageTypes() throws {
        let constants = Self.constants(try Self.brokerproto())
        let python = constants.filter { $0.key.hasSuffix("_REQUEST") || $0.key.hasSuffix("_ANSWER") }
        let swift = Dictionary(
            uniqueKeysWithValues: BrokerMessageType.allCases.map { (Self.pythonName($0), Int($0.rawValue)) })
        #expect(python == swift)
    }

    @Test func brokerprotoPairsEachRequestWithTheSwiftAnswer() throws {
        let pairs = Self.dictionary("PAIRS", in: try Self.brokerproto())
        let swift = BrokerProtocol.pairs.map { [Self.pythonName($0.request), Self.pythonName($0.answer)] }
        #expect(pairs.map { [$0.0, $0.1] } == swift)
    }

    @Test func brokerprotoHasExactlyTheSwiftAnswerCodes() throws {
        let codes = Self.dictionary("CODES", in: try Self.brokerproto())
        let swift = BrokerErrorCode.allCases.map { ["\($0)", "\($0.rawValue)"] }
        #expect(codes.map { [$0.0, $0.1] } == swift)
    }
}
