import FoundationEssentials
import KMSRuntime

@testable import Broker
@testable import VaultClient

/// A scripted in-memory Vault behind the `VaultTransport` protocol. It implements just enough of
/// AppRole and Transit (aes256-gcm96 shaped) for the broker's flows, completes every request
/// asynchronously through the event loop, and can hold requests (to fill in-flight slots) or
/// answer with any status and body.
final class FakeVault: VaultTransport {
    struct Recorded {
        var method: VaultRequest.Method
        var path: String
        var hadToken: Bool
        var token: String?
        var namespace: String?
        var correlationID: String?
        var timeoutMillis: Int
        var body: String
    }

    enum Reply {
        case json(status: Int, String)
        case transport(VaultTransportError)
        /// Never completes until `releaseHeld()`.
        case hold
    }

    let loop: EventLoop
    var keyType = "aes256-gcm96"
    var latestVersion = 1
    var minDecryptionVersion = 1
    var creationTimes: [Int: Int64] = [1: 1_700_000_000]
    var tokenCounter = 0
    var validTokens: Set<String> = []
    var leaseSeconds = 3600
    /// The lease renew-self grants (nil: `leaseSeconds`); shorter models a token near its max TTL.
    var renewLeaseSeconds: Int?
    /// Answer every login with this status and Vault's "invalid role or secret ID" (nil: succeed).
    var loginFailureStatus: Int?
    /// OpenBao 2.7's answer to a dead token: a bare 403 "permission denied", no "invalid token".
    var bareDeniedForDeadTokens = false
    /// Consulted first; return nil to let the default behaviour answer.
    var script: ((Recorded) -> Reply?)?
    private(set) var recorded: [Recorded] = []
    private var held: [(Recorded, (VaultResponse) -> Void)] = []
    private var pending = 0

    init(loop: EventLoop) { self.loop = loop }

    var inFlightCount: Int { pending + held.count }

    func requests(to suffix: String) -> [Recorded] { recorded.filter { $0.path.hasSuffix(suffix) } }

    var transitCalls: [Recorded] { recorded.filter { !$0.path.hasPrefix("auth/") } }

    func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void) {
        let token = request.token.map { secret in secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } }
        let body = request.body.map { buffer in buffer.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } } ?? ""
        let entry = Recorded(
            method: request.method, path: request.path, hadToken: token != nil, token: token,
            namespace: request.namespace,
            correlationID: request.correlationID, timeoutMillis: request.timeoutMillis, body: body)
        recorded.append(entry)
        let reply = script?(entry) ?? defaultReply(entry)
        if case .hold = reply {
            held.append((entry, completion))
        } else {
            complete(reply, completion)
        }
    }

    private func complete(_ reply: Reply, _ completion: @escaping (VaultResponse) -> Void) {
        pending += 1
        loop.schedule(afterMillis: 1) { [self] in
            pending -= 1
            switch reply {
            case .json(let status, let text):
                let buffer = WipedBuffer(capacity: text.utf8.count)
                buffer.append(text)
                completion(VaultResponse(status: status, body: buffer))
            case .transport(let error):
                completion(.failed(error))
            case .hold:
                completion(.failed(.cancelled))
            }
        }
    }

    func cancelAll() {
        let waiting = held
        held.removeAll()
        for (_, completion) in waiting { completion(.failed(.cancelled)) }
    }

    /// Completes every held request with the default behaviour.
    func releaseHeld() {
        let waiting = held
        held.removeAll()
        for (entry, completion) in waiting { complete(defaultReply(entry), completion) }
    }

    // MARK: default behaviour

    private func defaultReply(_ request: Recorded) -> Reply {
        if request.path.hasSuffix("/login"), let status = loginFailureStatus {
            return .json(status: status, #"{"errors":["invalid role or secret ID"]}"#)
        }
        if request.path.hasSuffix("/login") {
            tokenCounter += 1
            let token = "hvs.faketoken\(tokenCounter)"
            validTokens.insert(token)
            return .json(
                status: 200,
                #"{"auth":{"client_token":"\#(token)","accessor":"a","policies":["kms"],"lease_duration":\#(leaseSeconds),"renewable":true},"data":null}"#
            )
        }
        guard let token = request.token, validTokens.contains(token) else {
            if bareDeniedForDeadTokens { return .json(status: 403, #"{"errors":["permission denied"]}"#) }
            return .json(
                status: 403, #"{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}"#)
        }
        if request.path == "auth/token/lookup-self" {
            return .json(status: 200, #"{"data":{"ttl":3600,"renewable":true}}"#)
        }
        if request.path == "auth/token/renew-self" {
            return .json(
                status: 200,
                #"{"auth":{"client_token":"\#(token)","lease_duration":\#(renewLeaseSeconds ?? leaseSeconds),"renewable":true}}"#
            )
        }
        if request.path.contains("/keys/") { return keyReply() }
        if request.path.contains("/encrypt/") { return encryptReply(request.body) }
        if request.path.contains("/decrypt/") { return decryptReply(request.body) }
        return .json(status: 404, #"{"errors":[]}"#)
    }

    func keyReply() -> Reply {
        let keys = creationTimes.keys.sorted().map { "\"\($0)\":\(creationTimes[$0]!)" }.joined(separator: ",")
        return .json(
            status: 200,
            """
            {"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"allow_plaintext_backup":false,\
            "auto_rotate_period":0,"deletion_allowed":false,"derived":false,"exportable":false,"imported_key":false,\
            "keys":{\(keys)},"latest_version":\(latestVersion),"min_available_version":0,\
            "min_decryption_version":\(minDecryptionVersion),"min_encryption_version":0,"name":"kek",\
            "supports_decryption":true,"supports_derivation":true,"supports_encryption":true,"supports_signing":false,\
            "type":"\(keyType)"},"wrap_info":null,"warnings":null,"auth":null}
            """)
    }

    private struct EncryptBody: Decodable {
        var plaintext: String
        var key_version: Int
    }

    private struct DecryptBody: Decodable {
        var ciphertext: String
    }

    /// "Ciphertext" is the base64 of "ct:" + plaintext, under the requested version.
    private func encryptReply(_ body: String) -> Reply {
        guard let decoded = try? JSONDecoder().decode(EncryptBody.self, from: Data(body.utf8)),
            let plaintext = Data(base64Encoded: decoded.plaintext)
        else { return .json(status: 400, #"{"errors":["missing plaintext to encrypt"]}"#) }
        let version = decoded.key_version == 0 ? latestVersion : decoded.key_version
        let ciphertext = "vault:v\(version):" + Data(Array("ct:".utf8) + Array(plaintext)).base64EncodedString()
        return .json(status: 200, #"{"data":{"ciphertext":"\#(ciphertext)","key_version":\#(version)}}"#)
    }

    private func decryptReply(_ body: String) -> Reply {
        guard let decoded = try? JSONDecoder().decode(DecryptBody.self, from: Data(body.utf8)) else {
            return .json(status: 400, #"{"errors":["missing ciphertext to decrypt"]}"#)
        }
        let parts = decoded.ciphertext.split(separator: ":", maxSplits: 2)
        guard parts.count == 3, let raw = Data(base64Encoded: String(parts[2])), raw.starts(with: Array("ct:".utf8))
        else {
            return .json(status: 400, #"{"errors":["cipher: message authentication failed"]}"#)
        }
        let plaintext = Data(raw.dropFirst(3)).base64EncodedString()
        return .json(status: 200, #"{"data":{"plaintext":"\#(plaintext)"}}"#)
    }
}
