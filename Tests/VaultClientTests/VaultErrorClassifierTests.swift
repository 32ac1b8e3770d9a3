import KMSCore
import KMSRuntime
import Testing

@testable import VaultClient

struct VaultErrorClassifierTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var status: Int
        var body: String
        var code: BrokerErrorCode
        var testDescription: String { "\(status) \(body.prefix(50)) -> \(code)" }
    }

    static let table: [Case] = [
        Case(
            status: 429, body: #"{"errors":["request path \"transit/encrypt/kek\": rate limit quota exceeded"]}"#,
            code: .throttled),
        Case(status: 503, body: #"{"errors":["Vault is sealed"]}"#, code: .sealed),
        Case(
            status: 503,
            body: #"{"errors":["1 error occurred:\n\t* local node not active but active cluster node not found\n\n"]}"#,
            code: .unavailable),
        Case(
            status: 403, body: #"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#, code: .permissionDenied),
        Case(status: 400, body: #"{"errors":["cipher: message authentication failed"]}"#, code: .decryptFailed),
        Case(status: 400, body: #"{"errors":["invalid ciphertext: could not decode base64"]}"#, code: .decryptFailed),
        Case(status: 400, body: #"{"errors":["invalid ciphertext: version is too new"]}"#, code: .decryptFailed),
        Case(
            status: 400, body: #"{"errors":["ciphertext or signature version is disallowed by policy (too old)"]}"#,
            code: .versionTooOld),
        Case(status: 400, body: #"{"errors":["encryption key not found"]}"#, code: .keyMissing),
        Case(status: 404, body: #"{"errors":[]}"#, code: .keyMissing),
        Case(status: 500, body: #"{"errors":["internal error"]}"#, code: .unavailable),
        Case(status: 502, body: "<html>bad gateway</html>", code: .unavailable),
        Case(
            status: 400,
            body: #"{"errors":["requested version for encryption is higher than the latest key version"]}"#,
            code: .internalError),
        Case(status: 405, body: #"{"errors":["unsupported operation"]}"#, code: .internalError),
        Case(status: 307, body: "", code: .unavailable),
    ]

    @Test(arguments: table)
    func statusAndBodyMapToOneCode(_ entry: Case) {
        let body = WipedBuffer(capacity: 64)
        body.append(entry.body)
        #expect(VaultErrorClassifier.classify(VaultResponse(status: entry.status, body: body))?.code == entry.code)
    }

    @Test func successIsNotAnError() {
        #expect(VaultErrorClassifier.classify(VaultResponse(status: 200)) == nil)
        #expect(VaultErrorClassifier.classify(VaultResponse(status: 204)) == nil)
    }

    @Test func transportFailuresMapToUnavailableOrDeadline() {
        #expect(VaultErrorClassifier.classify(.failed(.connectFailed))?.code == .unavailable)
        #expect(VaultErrorClassifier.classify(.failed(.connectionReset))?.code == .unavailable)
        #expect(VaultErrorClassifier.classify(.failed(.tls))?.code == .unavailable)
        #expect(VaultErrorClassifier.classify(.failed(.timedOut))?.code == .deadlineExceeded)
    }

    @Test func onlyResetsAnd5xxAreRetryable() {
        #expect(VaultErrorClassifier.classify(.failed(.connectionReset))?.isRetryable == true)
        #expect(VaultErrorClassifier.classify(status: 502, errors: []).isRetryable)
        #expect(!VaultErrorClassifier.classify(status: 503, errors: ["vault is sealed"]).isRetryable)
        #expect(VaultErrorClassifier.classify(.failed(.connectFailed))?.isRetryable == false)
        #expect(VaultErrorClassifier.classify(.failed(.timedOut))?.isRetryable == false)
        #expect(!VaultErrorClassifier.classify(status: 429, errors: []).isRetryable)
    }

    @Test func theInvalidTokenShapeOfVault117IsRecognised() {
        let invalid = VaultErrorClassifier.classify(
            status: 403, errors: ["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"])
        #expect(invalid.code == .permissionDenied)
        #expect(invalid.invalidToken)
        #expect(
            !VaultErrorClassifier.classify(status: 403, errors: ["1 error occurred:\n\t* permission denied\n\n"])
                .invalidToken)
    }

    @Test func reasonsNeverCarryVaultText() {
        let error = VaultErrorClassifier.classify(
            status: 400, errors: ["cipher: message authentication failed secret-looking-text"])
        #expect(!error.reason.contains("secret-looking-text"))
    }

    @Test func aStandbyRedirectIsUnavailableAndNotRetried() {
        let error = VaultErrorClassifier.classify(status: 307, errors: [])
        #expect(error.code == .unavailable)
        #expect(error.reason == "vault standby redirect")
        #expect(!error.isRetryable)
    }

    @Test func callersBranchOnTheTypedCauseNotOnTheReasonText() throws {
        let tls = try #require(VaultErrorClassifier.classify(.failed(.tls)))
        #expect(tls.cause == .transport(.tls))
        #expect(tls.isTLSFailure)
        #expect(VaultErrorClassifier.classify(status: 307, errors: []).cause == .standbyRedirect)
        #expect(VaultErrorClassifier.classify(status: 502, errors: []).cause == .status)
        // An error that only reads like a reset (same reason text) is not retried: the cause decides.
        let lookalike = VaultCallError(
            code: .unavailable, status: 0, reason: "connection reset", cause: .unusableAnswer)
        #expect(!lookalike.isRetryable)
        #expect(!lookalike.isTLSFailure)
        let lookalikeTLS = VaultCallError(code: .unavailable, status: 0, reason: "TLS failure", cause: .notSent)
        #expect(TokenLifecycle.healthReason(for: lookalikeTLS) != "vault TLS handshake failed")
        #expect(TokenLifecycle.healthReason(for: tls) == "vault TLS handshake failed")
    }

    @Test func aResponseIsClassifiedWhenItIsMade() {
        let body = WipedBuffer(capacity: 32)
        body.append(#"{"errors":["Vault is sealed"]}"#)
        let response = VaultResponse(status: 503, body: body)
        #expect(response.failure?.code == .sealed)
        #expect(VaultErrorClassifier.classify(response) == response.failure)
        #expect(VaultResponse(status: 200).failure == nil)
        #expect(VaultResponse(status: 200).isSuccess)
        #expect(!response.isSuccess)
    }
}
