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
    struct Health: VaultJSONReadable {
        var version: String?
        var enterprise: Bool?

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            version = try json.optional("version").flatMap { value throws(JSONDocument.Failure) in
                value.isNull ? nil : try value.string()
            }
            enterprise = try json.optional("enterprise").flatMap { value throws(JSONDocument.Failure) in
                value.isNull ? nil : try value.bool()
            }
        }
    }

    /// `GET auth/token/lookup-self`.
    struct LookupSelf: VaultJSONReadable {
        struct TokenData {
            var ttl: Int64
            var renewable: Bool?
        }
        var data: TokenData

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            let data = try json.member("data")
            self.data = TokenData(ttl: try data.member("ttl").int64(), renewable: try optionalBool(data, "renewable"))
        }
    }

    /// `GET <mount>/keys/<name>` with the settings the broker itself does not need.
    struct Key: VaultJSONReadable {
        struct KeyData {
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

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            let data = try json.member("data")
            let period = try data.optional("auto_rotate_period")
            let keys = try data.optional("keys")
            self.data = KeyData(
                type: try data.member("type").string(), latest_version: try data.member("latest_version").int64(),
                min_decryption_version: try data.member("min_decryption_version").int64(),
                deletion_allowed: try optionalBool(data, "deletion_allowed"),
                exportable: try optionalBool(data, "exportable"),
                allow_plaintext_backup: try optionalBool(data, "allow_plaintext_backup"),
                auto_rotate_period: try period.flatMap { value throws(JSONDocument.Failure) in
                    value.isNull ? nil : try Seconds(value)
                },
                keys: try keys.flatMap { value throws(JSONDocument.Failure) in
                    value.isNull ? nil : try VaultJSON.CreationTime.map(value)
                })
        }
    }

    /// A duration Vault writes as integer seconds (or, defensively, a Go duration like `720h`).
    struct Seconds {
        var value: Int64

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            if json.kind == .number {
                value = try json.int64()
            } else {
                value = DurationText.seconds(try json.string()) ?? 0
            }
        }
    }

    /// `POST sys/capabilities-self`: `data` maps each path to its capabilities.
    struct Capabilities: VaultJSONReadable {
        var data: [String: [String]]?

        init(_ json: JSONDocument.Value) throws(JSONDocument.Failure) {
            guard let data = try json.optional("data"), !data.isNull else { return }
            var map: [String: [String]] = [:]
            for (path, value) in try data.members() {
                var capabilities: [String] = []
                for element in try value.elements() { capabilities.append(try element.string()) }
                map[path] = capabilities
            }
            self.data = map
        }
    }

    static func decode<T: VaultJSONReadable>(_ type: T.Type, _ response: VaultResponse) -> T? {
        VaultJSON.decode(type, from: response.body)
    }

    /// An optional boolean member (absent or null: nil).
    private static func optionalBool(_ json: JSONDocument.Value, _ key: StaticString) throws(JSONDocument.Failure)
        -> Bool?
    {
        guard let value = try json.optional(key), !value.isNull else { return nil }
        return try value.bool()
    }
}
