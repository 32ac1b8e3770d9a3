import KMSCore
import Testing

@testable import Front

struct GRPCStatusTests {
    @Test("every broker error code maps to its gRPC status code", arguments: BrokerErrorCode.allCases)
    func brokerCodeMapping(code: BrokerErrorCode) {
        let expected: GRPCStatus.Code =
            switch code {
            case .ok: .ok
            case .invalidRequest, .decryptFailed: .invalidArgument
            case .permissionDenied: .permissionDenied
            case .throttled, .tooManyRequests: .resourceExhausted
            case .unavailable, .sealed, .notReady: .unavailable
            case .deadlineExceeded: .deadlineExceeded
            case .unknownKeyID, .versionTooOld, .keyMissing: .failedPrecondition
            case .internalError: .internal
            }
        let status = GRPCStatus(brokerCode: code)
        #expect(status.code == expected)
        #expect(status.code.rawValue == [0, 3, 7, 8, 14, 14, 4, 9, 3, 8, 14, 9, 9, 13][Int(code.rawValue)])
    }

    @Test("error messages are short fixed printable texts")
    func messagesAreFixed() {
        for code in BrokerErrorCode.allCases where code != .ok {
            let message = GRPCStatus(brokerCode: code).message
            #expect(!message.isEmpty && message.utf8.count < 64)
            #expect(GRPCStatus.percentEncode(message) == message)
        }
    }

    @Test("printable ASCII passes through percent-encoding unchanged")
    func printableUnchanged() {
        #expect(GRPCStatus.percentEncode("deadline exceeded: ~{}[]!") == "deadline exceeded: ~{}[]!")
    }

    @Test("percent, control bytes and non-ASCII are percent-encoded with upper-case hex")
    func encodesOthers() {
        #expect(GRPCStatus.percentEncode("100%") == "100%25")
        #expect(GRPCStatus.percentEncode("a\nb\tc\u{7F}") == "a%0Ab%09c%7F")
        #expect(GRPCStatus.percentEncode("é✓") == "%C3%A9%E2%9C%93")
        #expect(GRPCStatus.percentEncode("") == "")
    }

    @Test("the header value is the encoded message")
    func encodedMessage() {
        #expect(GRPCStatus(.internal, "50% done\r\n").encodedMessage == "50%25 done%0D%0A")
    }
}
