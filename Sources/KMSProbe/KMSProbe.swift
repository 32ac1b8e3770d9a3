import KMSCore

#if canImport(Glibc)
    import Glibc
#endif

/// `vault-kube-kms probe`: Status, then an Encrypt/Decrypt round trip of a fresh 32-byte seed,
/// against the plugin's KMS socket, like kube-apiserver does. One line per step with its time;
/// the verdict is the exit status (0 only when every step passed).
public struct KMSProbe {
    /// One step's outcome, printed as `<step> ok|FAIL <ms> ms <detail>`.
    public struct Step: Equatable, Sendable {
        public var name: String
        public var passed: Bool
        public var micros: UInt64
        public var detail: String

        public var line: String {
            let millis = "\(micros / 1000).\(String(micros % 1000 / 100))"
            return "\(name) \(passed ? "ok" : "FAIL") \(millis) ms \(detail)"
        }
    }

    let client: GRPCUnixClient

    public init(address: GRPCUnixClient.SocketAddress, timeoutMillis: Int) {
        client = GRPCUnixClient(address: address, timeoutMillis: timeoutMillis)
    }

    /// Runs the steps, handing each to `report` as it finishes; stops at the first failure.
    /// Returns true when all passed.
    public func run(report: (Step) -> Void) -> Bool {
        let uid = "vault-kube-kms-probe-\(getpid())"
        var step = timed("status") { () throws -> String in
            let status = try ProbeMessages.StatusResponse(decoding: try call("Status", []))
            guard status.version == "v2" else {
                throw ProbeFailure("version \(status.version.debugDescription), want v2")
            }
            guard status.healthz == "ok" else { throw ProbeFailure("healthz \(status.healthz.debugDescription)") }
            guard !status.keyID.isEmpty else { throw ProbeFailure("empty key_id") }
            return "healthz=ok key_id=\(status.keyID)"
        }
        report(step)
        guard step.passed else { return false }

        var generator = SystemRandomNumberGenerator()
        let seed = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        var encrypted = ProbeMessages.EncryptResponse()
        step = timed("encrypt") { () throws -> String in
            encrypted = try ProbeMessages.EncryptResponse(
                decoding: try call("Encrypt", ProbeMessages.encryptRequest(plaintext: seed, uid: uid)))
            guard !encrypted.ciphertext.isEmpty, encrypted.ciphertext.count <= Limits.maxCiphertextBytes else {
                throw ProbeFailure("ciphertext of \(encrypted.ciphertext.count) bytes")
            }
            guard !encrypted.keyID.isEmpty else { throw ProbeFailure("empty key_id") }
            return "ciphertext=\(encrypted.ciphertext.count) bytes key_id=\(encrypted.keyID)"
        }
        report(step)
        guard step.passed else { return false }

        step = timed("decrypt") { () throws -> String in
            let request = ProbeMessages.decryptRequest(
                ciphertext: encrypted.ciphertext, uid: uid, keyID: encrypted.keyID)
            let decrypted = try ProbeMessages.DecryptResponse(decoding: try call("Decrypt", request))
            guard decrypted.plaintext == seed else { throw ProbeFailure("plaintext differs from the seed") }
            return "round trip matches"
        }
        report(step)
        return step.passed
    }

    private func call(_ method: String, _ message: [UInt8]) throws(ProbeFailure) -> [UInt8] {
        let reply: GRPCUnixClient.Reply
        do {
            reply = try client.call(method: method, message: message)
        } catch {
            throw ProbeFailure(error.description)
        }
        guard let status = reply.status else { throw ProbeFailure("no grpc-status in the answer") }
        guard status == 0 else { throw ProbeFailure("grpc-status \(status) \(reply.message)") }
        return reply.body
    }

    private func timed(_ name: String, _ body: () throws -> String) -> Step {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let outcome: Result<String, ProbeFailure>
        do {
            outcome = .success(try body())
        } catch let failure as ProbeFailure {
            outcome = .failure(failure)
        } catch let error as ProtobufError {
            outcome = .failure(ProbeFailure("malformed response: \(error)"))
        } catch {
            outcome = .failure(ProbeFailure("\(error)"))
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        let micros = UInt64(max(0, (end.tv_sec - start.tv_sec) * 1_000_000 + (end.tv_nsec - start.tv_nsec) / 1_000))
        switch outcome {
        case .success(let detail): return Step(name: name, passed: true, micros: micros, detail: detail)
        case .failure(let failure): return Step(name: name, passed: false, micros: micros, detail: failure.reason)
        }
    }
}

/// Why a step failed (printed; never contains the seed or plaintext).
struct ProbeFailure: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
