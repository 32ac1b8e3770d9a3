import KMSRuntime
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// `vault-kube-kms preflight`: checks a node's set-up against the best practices with the same
/// flags as the broker and reports one line per check. It logs in with the real secret ID,
/// inspects the token, its policy and the key, and revokes its token at the end. Nothing it
/// prints contains the secret ID, the token or a Vault answer's body.
public struct Preflight {
    public let configuration: BrokerConfiguration
    public let listenAddress: ListenAddress?

    /// `configuration` carries the TLS settings too (`--tls-sni`, `--tls-skip-verify`, client
    /// certificate): the preflight connects exactly as the broker would.
    public init(configuration: BrokerConfiguration, listenAddress: ListenAddress?) {
        self.configuration = configuration
        self.listenAddress = listenAddress
    }

    /// Runs every check in order and returns the report.
    public func run() throws(ConfigurationError) -> PreflightReport {
        var report = PreflightReport()
        for warning in configuration.warnings { report.add("configuration", .warn, warning) }
        let secretID = checkSecretIDFile(into: &report)
        checkSocketDirectory(into: &report)
        PreflightSandbox.check(into: &report)

        let loop = try wrapSystem { () throws(SystemError) in try EventLoop() }
        let addresses = (try? configuration.validated())?.vaultAddresses ?? [configuration.vaultAddress]
        var servers: [(index: Int, vault: PreflightVault, server: Server)] = []
        if addresses.count == 1 {
            let vault = try PreflightVault(configuration: configuration, loop: loop)
            servers.append((0, vault, checkServer(vault, address: addresses[0], into: &report)))
        } else {
            for (index, address) in addresses.enumerated() {
                let vault = try PreflightVault(configuration: configuration, loop: loop, address: address)
                servers.append((index, vault, checkAddress(vault, index: index, address: address, into: &report)))
            }
        }
        // The checks below go through the first address that serves, as the broker's calls would.
        let serving = servers.filter(\.server.reachable)
        let (vault, server) = serving.first.map { ($0.vault, $0.server) } ?? (servers[0].vault, servers[0].server)
        if addresses.count > 1 {
            report.add(
                PreflightDecisions.addresses(
                    serving: serving.map(\.index), count: addresses.count,
                    checkedThrough: serving.first.map { addresses[$0.index] }))
            if let first = serving.first {
                _ = checkServer(first.vault, address: addresses[first.index], into: &report, healthLine: false)
            }
        }
        guard server.reachable else {
            report.add("approle.login", .fail, "not attempted: Vault is not reachable")
            return report
        }
        guard let secretID else {
            report.add("approle.login", .fail, "not attempted: the secret-ID file is unusable")
            return report
        }
        let login = AppRoleLogin(
            authMount: configuration.authMount, roleID: configuration.roleID, namespace: vault.authNamespace)
        let token: VaultToken
        switch VaultToken.parse(vault.login(login, secretID: secretID)) {
        case .success(let value):
            token = value
            report.add("approle.login", .pass, "logged in through auth/\(configuration.authMount)")
        case .failure(let error):
            report.add("approle.login", .fail, "auth/\(configuration.authMount)/login: \(error.reason)")
            if configuration.vaultNamespace != nil {
                report.add(
                    PreflightDecisions.namespace(configuration.vaultNamespace, isCommunity: false, keyReadable: false))
            }
            return report
        }
        PreflightVaultChecks(vault: vault, token: token.secret, configuration: configuration)
            .run(into: &report, version: server.version)
        // Every other serving address: its edition with the same (cluster-wide) token, so a list
        // that mixes products or clusters shows.
        for other in serving.dropFirst() {
            let license = other.vault.get("sys/license/status", token: token.secret, namespace: nil)
            let edition = PreflightDecisions.edition(
                licenseStatus: license.status, licenseErrors: VaultJSON.errors(in: license.body),
                version: other.server.version, namespacedToken: other.vault.authNamespace != nil)
            report.add(
                "vault.address[\(other.index)].edition", edition.outcome, "\(addresses[other.index]): \(edition.detail)"
            )
        }
        let revoked = vault.post("auth/token/revoke-self", token: token.secret, namespace: vault.authNamespace)
        report.add(
            revoked.isSuccess
                ? PreflightResult("token.revoke", .pass, "the preflight's token was revoked")
                : PreflightResult(
                    "token.revoke", .warn,
                    "revoke-self failed (\(revoked.failure?.reason ?? "HTTP \(revoked.status)")); it expires with its TTL"
                ))
        return report
    }

    // MARK: local checks

    private func checkSecretIDFile(into report: inout PreflightReport) -> SecretBytes? {
        let path = configuration.secretIDPath
        do {
            let secret = try SecretIDFile.load(path: path)
            var info = stat()
            guard stat(path, &info) == 0 else {  // the file a Secret volume's links lead to
                report.add("secret_id.file", .fail, "cannot inspect \(path)")
                return nil
            }
            report.add(PreflightDecisions.secretIDFile(path: path, mode: UInt32(info.st_mode), ownerUID: info.st_uid))
            return secret
        } catch {
            report.add("secret_id.file", .fail, error.description)
            return nil
        }
    }

    private func checkSocketDirectory(into report: inout PreflightReport) {
        switch listenAddress {
        case .none:
            report.add("socket.directory", .warn, "--listen-address not given: socket directory not checked")
        case .abstract(let name):
            report.add(
                "socket.directory", .warn,
                "abstract socket @\(name) has no file permissions: any process in the network namespace can connect")
        case .path(let path):
            report.add(
                PreflightDecisions.socketDirectory(
                    path: Self.directory(of: path),
                    verdict: Result { () throws(ConfigurationError) in try SocketDirectory.check(socketPath: path) }))
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    // MARK: server checks

    private struct Server {
        var reachable: Bool
        /// `version` from sys/health, shown with the edition.
        var version: String?
    }

    /// One of several addresses: `vault.address[i]` (reachability and seal status) alone.
    private func checkAddress(_ vault: PreflightVault, index: Int, address: String, into report: inout PreflightReport)
        -> Server
    {
        let health = vault.get("sys/health")
        let result = PreflightDecisions.health(
            status: health.status, transportError: health.transportError.map(\.description), address: address)
        report.add("vault.address[\(index)]", result.outcome == .pass ? .pass : .warn, result.detail)
        return Self.server(health)
    }

    private static func server(_ health: VaultResponse) -> Server {
        let reachable = health.transportError == nil && [200, 429, 473].contains(health.status)
        guard reachable else { return Server(reachable: false, version: nil) }
        return Server(reachable: true, version: PreflightJSON.decode(PreflightJSON.Health.self, health)?.version)
    }

    private func checkServer(
        _ vault: PreflightVault, address: String, into report: inout PreflightReport, healthLine: Bool = true
    ) -> Server {
        let isHTTPS = address.hasPrefix("https://")
        let health = vault.get("sys/health")
        let transportError = health.transportError.map(\.description)
        if healthLine {
            report.add(
                PreflightDecisions.health(status: health.status, transportError: transportError, address: address))
        }
        report.add(
            PreflightDecisions.tls(
                isHTTPS: isHTTPS, skipVerify: configuration.tlsSkipVerify, tlsFailed: health.transportError == .tls,
                caFile: configuration.caFile))
        report.add(
            PreflightDecisions.sni(
                isHTTPS: isHTTPS, host: Self.host(of: address), serverName: configuration.tlsServerName))
        return Self.server(health)
    }

    static func host(of address: String) -> String {
        var rest = Substring(address)
        for scheme in ["https://", "http://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") { return String(rest[...close]) }
        if let colon = rest.lastIndex(of: ":") { rest = rest[..<colon] }
        return String(rest)
    }
}

/// Turns a system-call failure during set-up into a configuration error for the operator.
private func wrapSystem<T>(_ body: () throws(SystemError) -> T) throws(ConfigurationError) -> T {
    do { return try body() } catch { throw ConfigurationError("\(error)") }
}
