import FoundationEssentials
import KMSRuntime
import VaultClient

/// Blocking Vault calls for the preflight: each request runs the event loop until its answer
/// arrives. The preflight is a one-shot command, so sequential calls keep it simple to read.
final class PreflightVault {
    private let loop: EventLoop
    private let transport: any VaultTransport
    private let timeoutMillis: Int
    let namespace: String?
    let authNamespace: String?

    /// `address`: one of several `--vault-address` entries (nil: the first).
    init(configuration: BrokerConfiguration, loop: EventLoop, address: String? = nil) throws(ConfigurationError) {
        self.loop = loop
        transport = try CurlMultiTransport(
            loop: loop, options: .init(configuration, baseURL: address ?? configuration.vaultAddress))
        timeoutMillis = configuration.requestTimeoutMillis
        namespace = configuration.vaultNamespace
        authNamespace = configuration.effectiveAuthNamespace
    }

    /// Sends one request and waits for its answer.
    func send(_ request: VaultRequest) -> VaultResponse {
        var answer: VaultResponse?
        transport.send(request) { [loop] response in
            answer = response
            loop.stop()
        }
        while answer == nil { loop.run() }
        return answer!
    }

    func get(_ path: String, token: SecretBytes? = nil, namespace: String? = nil) -> VaultResponse {
        send(VaultRequest(method: .get, path: path, token: token, namespace: namespace, timeoutMillis: timeoutMillis))
    }

    func post(_ path: String, body: String? = nil, token: SecretBytes?, namespace: String?) -> VaultResponse {
        var buffer: WipedBuffer?
        if let body {
            buffer = WipedBuffer(capacity: body.utf8.count)
            buffer?.append(body)
        }
        return send(
            VaultRequest(
                method: .post, path: path, body: buffer, token: token, namespace: namespace,
                timeoutMillis: timeoutMillis))
    }

    func login(_ login: AppRoleLogin, secretID: SecretBytes) -> VaultResponse {
        send(login.request(secretID: secretID, timeoutMillis: timeoutMillis))
    }
}

/// The fields of Vault's answers that only the preflight reads.
enum PreflightJSON {
    /// `GET sys/health` (no envelope).
    struct Health: Decodable {
        var version: String?
        var enterprise: Bool?
    }

    /// `GET auth/token/lookup-self`.
    struct LookupSelf: Decodable {
        struct TokenData: Decodable {
            var ttl: Int64
            var renewable: Bool?
        }
        var data: TokenData
    }

    /// `GET <mount>/keys/<name>` with the settings the broker itself does not need.
    struct Key: Decodable {
        struct KeyData: Decodable {
            var type: String
            var latest_version: Int64
            var min_decryption_version: Int64
            var deletion_allowed: Bool?
            var exportable: Bool?
            var allow_plaintext_backup: Bool?
            var auto_rotate_period: Seconds?
            var keys: [String: VaultJSON.CreationTime]?
        }
        var data: KeyData
    }

    /// A duration Vault writes as integer seconds (or, defensively, a Go duration like `720h`).
    struct Seconds: Decodable {
        var value: Int64

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let integer = try? container.decode(Int64.self) {
                value = integer
            } else if let double = try? container.decode(Double.self), double.isFinite, abs(double) < 9e18 {
                value = Int64(double)
            } else {
                value = Self.parseGoDuration(try container.decode(String.self)) ?? 0
            }
        }

        /// `720h`, `90m`, `3600s`, `1h30m`; nil for anything else.
        static func parseGoDuration(_ text: String) -> Int64? {
            var total: Int64 = 0
            var number: Int64 = 0
            var sawDigit = false
            for character in text {
                if let digit = character.wholeNumberValue {
                    number = number * 10 + Int64(digit)
                    sawDigit = true
                    continue
                }
                guard sawDigit else { return nil }
                switch character {
                case "h": total += number * 3600
                case "m": total += number * 60
                case "s": total += number
                default: return nil
                }
                number = 0
                sawDigit = false
            }
            return sawDigit ? (number == 0 ? total : nil) : total
        }
    }

    /// `POST sys/capabilities-self`: `data` maps each path to its capabilities.
    struct Capabilities: Decodable {
        var data: [String: [String]]?
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: VaultResponse) -> T? {
        VaultJSON.decode(type, from: response.body)
    }
}
