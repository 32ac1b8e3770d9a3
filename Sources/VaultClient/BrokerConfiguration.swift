import KMSRuntime

/// Everything the broker needs to reach Vault, as parsed by `main` from flags and environment.
/// Nothing here is secret: the secret ID stays in its file and is read at every login.
public struct BrokerConfiguration: Sendable {
    /// Vault's base address, e.g. `http://127.0.0.1:8200` (no path, no trailing `/v1`). Before
    /// validation it may be a comma-separated list; after, it is the first (preferred) address.
    public var vaultAddress: String
    /// Every configured address, in order (the first is preferred; `FailoverTransport`). Set by
    /// `validated()` from `vaultAddress`.
    public var vaultAddresses: [String] = []
    /// `<mount>/keys/<name>`; the mount may contain slashes (`kms/transit/keys/kek`).
    public var vaultKeyPath: String
    /// The AppRole auth mount (`auth/<authMount>/login`).
    public var authMount: String
    /// The AppRole role ID (not secret: it identifies the role, the secret ID authenticates).
    public var roleID: String
    /// Path of the 0400 file holding the AppRole secret ID; re-read at every login.
    public var secretIDPath: String
    /// Sent as `X-Vault-Namespace` on Transit calls (and on login unless `authNamespace` is set).
    public var vaultNamespace: String?
    /// Sent as `X-Vault-Namespace` on login and token calls; nil means `vaultNamespace`.
    public var authNamespace: String?
    /// PEM CA bundle for verifying Vault's certificate; nil means the system trust store.
    public var caFile: String?
    /// TCP + TLS connect timeout of every Vault request.
    public var connectTimeoutMillis: Int
    /// Timeout of a Vault call when the front gave no deadline, and of the broker's own calls.
    public var requestTimeoutMillis: Int
    /// Interval of the background key metadata probe; also the minimum interval between the
    /// metadata refreshes that an unknown Decrypt version may trigger.
    public var keyCheckIntervalMillis: Int
    /// Interval of the deep probe (an encrypt/decrypt round trip with the active version).
    public var deepCheckIntervalMillis: Int
    /// The TLS server name to present (SNI) and verify, when it differs from the address's host
    /// (a load balancer in front of Vault): the broker connects to the address but speaks TLS
    /// to this name.
    public var tlsServerName: String?
    /// Client certificate (PEM) for Vault listeners that require one, with its key.
    public var tlsClientCertFile: String?
    public var tlsClientKeyFile: String?
    /// Development only: do not verify Vault's certificate. Logged loudly and exported.
    public var tlsSkipVerify: Bool
    /// Refuse to serve unless `sys/license/status` says Vault Enterprise.
    public var requireEnterprise: Bool
    /// An explicit proxy for Vault calls (`--vault-proxy`, logged at start). Without it no proxy
    /// is used, whatever the environment says.
    public var vaultProxy: String?
    /// Takeover of data another plugin wrote: a Decrypt whose key_id is not of this plugin's
    /// scheme is accepted when its ciphertext is `vault:vN:` of the configured key and N is a
    /// known version (counted and logged; off by default). docs/operations.md has the runbook.
    public var acceptForeignKeyIDs: Bool = false
    /// Warnings found while parsing (deprecated flags), logged by the broker at start.
    public var warnings: [String] = []

    public init(
        vaultAddress: String,
        vaultKeyPath: String,
        authMount: String = "approle",
        roleID: String,
        secretIDPath: String,
        vaultNamespace: String? = nil,
        authNamespace: String? = nil,
        caFile: String? = nil,
        connectTimeoutMillis: Int = 5000,
        requestTimeoutMillis: Int = 10_000,
        keyCheckIntervalMillis: Int = 30_000,
        deepCheckIntervalMillis: Int = 300_000,
        tlsServerName: String? = nil,
        tlsClientCertFile: String? = nil,
        tlsClientKeyFile: String? = nil,
        tlsSkipVerify: Bool = false,
        requireEnterprise: Bool = false
    ) {
        self.vaultAddress = vaultAddress
        self.vaultKeyPath = vaultKeyPath
        self.authMount = authMount
        self.roleID = roleID
        self.secretIDPath = secretIDPath
        self.vaultNamespace = vaultNamespace
        self.authNamespace = authNamespace
        self.caFile = caFile
        self.connectTimeoutMillis = connectTimeoutMillis
        self.requestTimeoutMillis = requestTimeoutMillis
        self.keyCheckIntervalMillis = keyCheckIntervalMillis
        self.deepCheckIntervalMillis = deepCheckIntervalMillis
        self.tlsServerName = tlsServerName
        self.tlsClientCertFile = tlsClientCertFile
        self.tlsClientKeyFile = tlsClientKeyFile
        self.tlsSkipVerify = tlsSkipVerify
        self.requireEnterprise = requireEnterprise
    }

    /// Checks every field and returns a normalised copy (address without trailing `/`, empty
    /// namespaces as nil). Messages name the flag's meaning and never contain a secret. Idempotent:
    /// validating the returned copy again returns it unchanged (warnings included).
    public func validated() throws(ConfigurationError) -> BrokerConfiguration {
        var copy = self
        // Validating a validated copy again keeps its list (its `vaultAddress` is the first only).
        copy.vaultAddresses = try Self.validateAddresses(
            vaultAddresses.isEmpty ? vaultAddress : vaultAddresses.joined(separator: ","))
        copy.vaultAddress = copy.vaultAddresses[0]
        _ = try TransitKeyPath(parsing: vaultKeyPath)
        try Self.validateMount(authMount, what: "auth mount")
        guard !roleID.isEmpty, roleID.utf8.count <= 256, roleID.unicodeScalars.allSatisfy(Self.isPrintableASCII) else {
            throw ConfigurationError("AppRole role ID must be 1-256 printable ASCII characters")
        }
        guard secretIDPath.hasPrefix("/") else {
            throw ConfigurationError("secret-ID path must be absolute (got \(secretIDPath.debugDescription))")
        }
        copy.vaultNamespace = try Self.validateNamespace(vaultNamespace, what: "Vault namespace")
        copy.authNamespace = try Self.validateNamespace(authNamespace, what: "Vault auth namespace")
        if let caFile, caFile.isEmpty { copy.caFile = nil }
        copy.tlsServerName = try Self.validateServerName(tlsServerName)
        if tlsClientCertFile?.isEmpty == true { copy.tlsClientCertFile = nil }
        if tlsClientKeyFile?.isEmpty == true { copy.tlsClientKeyFile = nil }
        guard (copy.tlsClientCertFile == nil) == (copy.tlsClientKeyFile == nil) else {
            throw ConfigurationError("--tls-client-cert and --tls-client-key must be given together")
        }
        copy.vaultProxy = try Self.validateProxy(vaultProxy)
        let usesTLSOptions = copy.caFile != nil || copy.tlsServerName != nil || copy.tlsClientCertFile != nil
        // `main` validates and the broker validates the result again: a warning found here is added
        // once, so that validating a validated copy changes nothing (each is logged once at start).
        let plainHTTPWarning = "TLS options are set but the Vault address is http://: they have no effect"
        if usesTLSOptions || tlsSkipVerify, copy.vaultAddresses.allSatisfy({ $0.hasPrefix("http://") }),
            !copy.warnings.contains(plainHTTPWarning)
        {
            copy.warnings.append(plainHTTPWarning)
        }
        for (name, value) in [
            ("connect timeout", connectTimeoutMillis), ("request timeout", requestTimeoutMillis),
            ("key check interval", keyCheckIntervalMillis), ("deep check interval", deepCheckIntervalMillis),
        ] {
            guard (1...3_600_000).contains(value) else {
                throw ConfigurationError("\(name) must be between 1 ms and 1 h (got \(value) ms)")
            }
        }
        return copy
    }

    /// The namespace for login and token calls.
    package var effectiveAuthNamespace: String? { authNamespace ?? vaultNamespace }

    /// At most this many Vault addresses (the nodes of one cluster; bounds the metric labels).
    public static let maxVaultAddresses = 8

    /// A comma-separated list of addresses (one is a list too), each validated, no duplicates.
    static func validateAddresses(_ list: String) throws(ConfigurationError) -> [String] {
        let parts = list.split(separator: ",", omittingEmptySubsequences: false).map { part in
            var text = Substring(part)
            while text.first == " " { text.removeFirst() }
            while text.last == " " { text.removeLast() }
            return String(text)
        }
        guard !parts.isEmpty, !parts.contains(where: \.isEmpty) else {
            throw ConfigurationError("Vault address list \(list.debugDescription) has an empty entry")
        }
        guard parts.count <= maxVaultAddresses else {
            throw ConfigurationError("at most \(maxVaultAddresses) Vault addresses (got \(parts.count))")
        }
        var addresses: [String] = []
        for part in parts {
            let address = try validateAddress(part)
            guard !addresses.contains(address) else {
                throw ConfigurationError("Vault address \(address.debugDescription) is listed twice")
            }
            addresses.append(address)
        }
        return addresses
    }

    static func validateAddress(_ address: String) throws(ConfigurationError) -> String {
        var trimmed = address
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        let rest: Substring
        if trimmed.hasPrefix("https://") {
            rest = trimmed.dropFirst("https://".count)
        } else if trimmed.hasPrefix("http://") {
            rest = trimmed.dropFirst("http://".count)
        } else {
            throw ConfigurationError(
                "Vault address must start with http:// or https:// (got \(address.debugDescription))")
        }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@"), !rest.contains("?"), !rest.contains("#"),
            rest.unicodeScalars.allSatisfy(isPrintableASCII)
        else {
            throw ConfigurationError(
                "Vault address must be scheme://host[:port] without path or user info (got \(address.debugDescription))"
            )
        }
        return trimmed
    }

    /// `--vault-proxy`: `http://`, `https://`, `socks5://` or `socks5h://` and host[:port], no
    /// user info (credentials would end up in logs), no path.
    static func validateProxy(_ proxy: String?) throws(ConfigurationError) -> String? {
        guard var proxy, !proxy.isEmpty else { return nil }
        while proxy.hasSuffix("/") { proxy.removeLast() }
        guard let scheme = ["http://", "https://", "socks5://", "socks5h://"].first(where: { proxy.hasPrefix($0) }),
            case let rest = proxy.dropFirst(scheme.count), !rest.isEmpty,
            !rest.contains("/"), !rest.contains("@"), !rest.contains("?"), !rest.contains("#"),
            rest.unicodeScalars.allSatisfy(isPrintableASCII)
        else {
            throw ConfigurationError(
                "--vault-proxy must be http://, https://, socks5:// or socks5h:// host[:port] without path or user info"
            )
        }
        return proxy
    }

    /// A DNS name (or IP literal) for SNI and verification: letters, digits, `-`, `.`, `:`.
    static func validateServerName(_ name: String?) throws(ConfigurationError) -> String? {
        guard let name, !name.isEmpty else { return nil }
        guard name.utf8.count <= 253,
            name.unicodeScalars.allSatisfy({ isWordCharacter($0) || $0 == "-" || $0 == "." || $0 == ":" }),
            !name.hasPrefix("."), !name.hasPrefix("-")
        else { throw ConfigurationError("TLS server name \(name.debugDescription) is not a host name") }
        return name
    }

    static func validateMount(_ mount: String, what: String) throws(ConfigurationError) {
        guard !mount.isEmpty else { throw ConfigurationError("\(what) is empty") }
        guard !mount.hasPrefix("/"), !mount.hasSuffix("/") else {
            throw ConfigurationError("\(what) \(mount.debugDescription) must not start or end with /")
        }
        guard !mount.contains("//") else { throw ConfigurationError("\(what) \(mount.debugDescription) contains //") }
        let segments = mount.split(separator: "/")
        guard !segments.contains(where: { $0 == ".." || $0 == "." }) else {
            throw ConfigurationError("\(what) \(mount.debugDescription) contains a . or .. segment")
        }
        guard mount.unicodeScalars.allSatisfy({ isWordCharacter($0) || $0 == "-" || $0 == "." || $0 == "/" }) else {
            throw ConfigurationError("\(what) \(mount.debugDescription) may contain only letters, digits, _ - . and /")
        }
    }

    static func validateNamespace(_ namespace: String?, what: String) throws(ConfigurationError) -> String? {
        guard var namespace, !namespace.isEmpty else { return nil }
        while namespace.hasSuffix("/") { namespace.removeLast() }
        guard !namespace.isEmpty else { return nil }
        try validateMount(namespace, what: what)
        return namespace
    }

    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "_": true
        default: false
        }
    }

    static func isPrintableASCII(_ scalar: Unicode.Scalar) -> Bool { (0x21...0x7E).contains(scalar.value) }
}

/// `--vault-key-path` split into the Transit mount and the key name, at the LAST `/keys/`.
public struct TransitKeyPath: Equatable, Sendable {
    public let mount: String
    public let keyName: String

    public init(parsing path: String) throws(ConfigurationError) {
        let bytes = Array(path.utf8)
        let marker = Array("/keys/".utf8)
        guard bytes.count >= marker.count,
            let start = (0...(bytes.count - marker.count)).reversed().first(where: {
                bytes[$0..<$0 + marker.count].elementsEqual(marker)
            })
        else {
            throw ConfigurationError(
                "Vault key path \(path.debugDescription) must look like <transit mount>/keys/<key name>")
        }
        let mount = String(decoding: bytes[..<start], as: UTF8.self)
        let name = String(decoding: bytes[(start + marker.count)...], as: UTF8.self)
        try BrokerConfiguration.validateMount(mount, what: "Transit mount of the key path")
        guard let first = name.unicodeScalars.first, let last = name.unicodeScalars.last,
            BrokerConfiguration.isWordCharacter(first), BrokerConfiguration.isWordCharacter(last),
            name.unicodeScalars.allSatisfy({ BrokerConfiguration.isWordCharacter($0) || $0 == "-" || $0 == "." }),
            name.utf8.count <= 128
        else {
            throw ConfigurationError(
                "Transit key name \(name.debugDescription) must be word characters, - and ., starting and ending with a word character"
            )
        }
        self.mount = mount
        self.keyName = name
    }
}
