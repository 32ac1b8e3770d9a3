import KMSRuntime
import VaultClient

/// The pure decisions of `vault-kube-kms preflight`: each takes facts already read from the file
/// system or Vault and returns a verdict. No I/O here, so every threshold is unit-tested.
enum PreflightDecisions {
    /// Above this a token TTL is reported as long: a stolen token should die within a day, and
    /// the broker renews or logs in again on its own at any TTL from seconds up.
    static let maxShortTokenTTLSeconds: Int64 = 24 * 3600
    /// The best practices ask for a KEK rotation at least every 90 days.
    static let maxAutoRotateSeconds: Int64 = 90 * 24 * 3600
    /// A version retired (superseded) more recently than this may still protect Secrets that no
    /// storage migration has rewritten yet; raising `min_decryption_version` past it is suspect.
    static let recentRetirementSeconds: Int64 = 7 * 24 * 3600

    // MARK: token

    /// `ttl` is lookup-self's seconds left; 0 means the token never expires.
    static func tokenTTL(seconds: Int64) -> PreflightResult {
        if seconds <= 0 {
            return PreflightResult(
                "token.ttl", .warn, "token never expires; give the AppRole role a token_ttl of at most 24h")
        }
        if seconds > maxShortTokenTTLSeconds {
            return PreflightResult(
                "token.ttl", .warn,
                "token TTL \(DurationText.text(seconds: seconds)) is longer than 24h; lower the role's token_ttl")
        }
        return PreflightResult("token.ttl", .pass, "token TTL \(DurationText.text(seconds: seconds))")
    }

    static func tokenRenewable(_ renewable: Bool) -> PreflightResult {
        renewable
            ? PreflightResult("token.renewable", .pass, "token is renewable")
            : PreflightResult(
                "token.renewable", .warn, "token is not renewable; the broker logs in again before each expiry")
    }

    // MARK: capabilities

    /// What the broker needs on one path, and whether lacking it stops the plugin.
    struct CapabilityNeed: Equatable {
        var check: String
        var path: String
        var required: Set<String>
        /// False for an optional path: lacking it is a warning, not a failure.
        var missingIsFailure: Bool
        /// Shown when `create` is granted on encrypt: it lets Vault create a missing key.
        var createNote: Bool = false
    }

    /// The paths the broker calls, with exactly the capabilities it needs.
    static func capabilityNeeds(mount: String, keyName: String) -> [CapabilityNeed] {
        [
            CapabilityNeed(
                check: "policy.encrypt", path: "\(mount)/encrypt/\(keyName)", required: ["update"],
                missingIsFailure: true, createNote: true),
            CapabilityNeed(
                check: "policy.decrypt", path: "\(mount)/decrypt/\(keyName)", required: ["update"],
                missingIsFailure: true),
            CapabilityNeed(
                check: "policy.key", path: "\(mount)/keys/\(keyName)", required: ["read"], missingIsFailure: true),
            CapabilityNeed(
                check: "policy.license", path: "sys/license/status", required: ["read"], missingIsFailure: false),
        ]
    }

    /// Compares what `sys/capabilities-self` granted with what the broker needs: FAIL (or WARN
    /// for an optional path) when a capability is missing, WARN when more is granted.
    static func capabilities(_ need: CapabilityNeed, granted: [String]) -> PreflightResult {
        let grantedSet = Set(granted).subtracting(["deny"])
        let required = need.required.sorted().joined(separator: ", ")
        if granted.contains("deny") || grantedSet.isEmpty {
            return PreflightResult(
                need.check, need.missingIsFailure ? .fail : .warn, "no capability on \(need.path); needs \(required)")
        }
        if grantedSet.contains("root") {
            return PreflightResult(
                need.check, .warn,
                "root capability on \(need.path): this is a root token or policy; needs only \(required)")
        }
        let missing = need.required.subtracting(grantedSet)
        if !missing.isEmpty {
            return PreflightResult(
                need.check, need.missingIsFailure ? .fail : .warn,
                "missing \(missing.sorted().joined(separator: ", ")) on \(need.path) (granted: \(grantedSet.sorted().joined(separator: ", ")))"
            )
        }
        let extra = grantedSet.subtracting(need.required)
        if !extra.isEmpty {
            var detail =
                "broader than needed on \(need.path): \(extra.sorted().joined(separator: ", ")); needs only \(required)"
            if need.createNote && extra.contains("create") { detail += " (create lets encrypt create a missing key)" }
            return PreflightResult(need.check, .warn, detail)
        }
        return PreflightResult(need.check, .pass, "\(required) on \(need.path)")
    }

    // MARK: key

    /// The key's settings as read from `GET <mount>/keys/<name>`.
    struct KeyFacts: Equatable {
        var type: String
        var latestVersion: Int64
        var minDecryptionVersion: Int64
        var deletionAllowed: Bool
        var exportable: Bool
        var allowPlaintextBackup: Bool
        /// 0 when auto-rotation is off.
        var autoRotateSeconds: Int64
        /// Creation time (Unix seconds) of each version Vault lists.
        var creationTimes: [Int64: Int64]
    }

    static func key(_ facts: KeyFacts, nowSeconds: Int64) -> [PreflightResult] {
        var results: [PreflightResult] = []
        if facts.type == KeyMetadata.requiredType {
            results.append(PreflightResult("key.type", .pass, "type \(facts.type)"))
        } else {
            results.append(
                PreflightResult(
                    "key.type", .fail, "type \(facts.type); the plugin needs \(KeyMetadata.requiredType)"))
        }
        results.append(
            facts.latestVersion >= 1
                ? PreflightResult("key.versions", .pass, "latest version \(facts.latestVersion)")
                : PreflightResult("key.versions", .fail, "key reports no version"))
        results.append(
            facts.deletionAllowed
                ? PreflightResult(
                    "key.deletion", .fail,
                    "deletion_allowed is true: anyone with delete on the key destroys every Secret it protects; set it to false"
                )
                : PreflightResult("key.deletion", .pass, "deletion_allowed false"))
        results.append(rotation(autoRotateSeconds: facts.autoRotateSeconds))
        results.append(minimumDecryptionVersion(facts, nowSeconds: nowSeconds))
        results.append(backup(exportable: facts.exportable, allowPlaintextBackup: facts.allowPlaintextBackup))
        return results
    }

    static func rotation(autoRotateSeconds: Int64) -> PreflightResult {
        if autoRotateSeconds <= 0 {
            return PreflightResult(
                "key.rotation", .warn, "auto_rotate_period not set; set it to at most 90 days (e.g. 720h)")
        }
        if autoRotateSeconds > maxAutoRotateSeconds {
            return PreflightResult(
                "key.rotation", .warn,
                "auto_rotate_period \(DurationText.text(seconds: autoRotateSeconds)) is longer than 90 days")
        }
        return PreflightResult(
            "key.rotation", .pass, "auto_rotate_period \(DurationText.text(seconds: autoRotateSeconds))")
    }

    /// Versions below `min_decryption_version` can no longer decrypt. The preflight cannot see
    /// etcd, so it judges by time: version N stopped encrypting when N+1 was created, so if the
    /// oldest still decryptable version is younger than `recentRetirementSeconds`, Secrets written
    /// with the version just below it may not have been rewritten yet.
    static func minimumDecryptionVersion(_ facts: KeyFacts, nowSeconds: Int64) -> PreflightResult {
        let minimum = max(1, facts.minDecryptionVersion)
        guard minimum > 1 else {
            return PreflightResult("key.min_decryption_version", .pass, "1: every version decrypts")
        }
        if let created = facts.creationTimes[minimum], nowSeconds - created < recentRetirementSeconds {
            return PreflightResult(
                "key.min_decryption_version", .warn,
                "\(minimum), but version \(minimum - 1) was still encrypting \(DurationText.text(seconds: max(0, nowSeconds - created))) ago; "
                    + "lower it unless a storage migration rewrote every Secret since")
        }
        return PreflightResult(
            "key.min_decryption_version", .pass, "\(minimum); versions below it retired over 7 days ago")
    }

    static func backup(exportable: Bool, allowPlaintextBackup: Bool) -> PreflightResult {
        if exportable && allowPlaintextBackup {
            return PreflightResult("key.backup", .pass, "exportable and allow_plaintext_backup: transit backup works")
        }
        return PreflightResult(
            "key.backup", .warn,
            "transit backup disabled (exportable \(exportable), allow_plaintext_backup \(allowPlaintextBackup)); "
                + "rely on Vault storage snapshots instead, see docs/operations.md, Disaster recovery")
    }

    // MARK: Vault server

    /// `sys/health` answered `status` (0 for a transport failure).
    static func health(status: Int, transportError: String?, address: String) -> PreflightResult {
        if let transportError {
            return PreflightResult("vault.reachable", .fail, "\(address): \(transportError)")
        }
        switch status {
        case 200: return PreflightResult("vault.reachable", .pass, "\(address): active, unsealed")
        case 429, 473: return PreflightResult("vault.reachable", .pass, "\(address): standby node (HTTP \(status))")
        case 503: return PreflightResult("vault.reachable", .fail, "\(address): Vault is sealed")
        case 501: return PreflightResult("vault.reachable", .fail, "\(address): Vault is not initialised")
        default: return PreflightResult("vault.reachable", .fail, "\(address): sys/health answered HTTP \(status)")
        }
    }

    /// Several `--vault-address` entries: which of them serve (`serving`, indexes), and the one
    /// the checks after this line go through. One serving address is enough for the broker (it
    /// fails over), but a list with dead entries has lost its redundancy: a warning; none: a failure.
    static func addresses(serving: [Int], count: Int, checkedThrough: String?) -> PreflightResult {
        guard let checkedThrough, let first = serving.first else {
            return PreflightResult("vault.reachable", .fail, "none of the \(count) Vault addresses can serve")
        }
        let detail =
            "\(serving.count) of \(count) addresses serve (index \(serving.map(String.init).joined(separator: ", ")));"
            + " the checks below go through index \(first), \(checkedThrough)"
        return PreflightResult("vault.reachable", serving.count == count ? .pass : .warn, detail)
    }

    /// Whether traffic to Vault is encrypted and verified; `reached` is false when the TLS
    /// handshake or certificate verification failed.
    static func tls(isHTTPS: Bool, skipVerify: Bool, tlsFailed: Bool, caFile: String?) -> PreflightResult {
        guard isHTTPS else {
            return PreflightResult(
                "vault.tls", .warn,
                "plain http: the secret ID, the token and every DEK seed cross the network unencrypted; use https")
        }
        if tlsFailed {
            return PreflightResult(
                "vault.tls", .fail,
                "TLS handshake or certificate verification failed; check --tls-ca-file and the server name")
        }
        if skipVerify {
            return PreflightResult("vault.tls", .warn, "certificate verification is disabled (skip-verify)")
        }
        return PreflightResult("vault.tls", .pass, "certificate verified against \(caFile ?? "the system trust store")")
    }

    /// The TLS server name libcurl sends: the explicit one, else the address's host when it is a
    /// name. An IP address sends none, so a load balancer that routes by name cannot.
    static func sni(isHTTPS: Bool, host: String, serverName: String?) -> PreflightResult {
        guard isHTTPS else { return PreflightResult("vault.sni", .pass, "not applicable over plain http") }
        if let serverName { return PreflightResult("vault.sni", .pass, "server name \(serverName) (explicit)") }
        if isIPAddress(host) {
            return PreflightResult(
                "vault.sni", .warn, "\(host) is an IP address: no SNI is sent and the certificate needs an IP SAN")
        }
        return PreflightResult("vault.sni", .pass, "server name \(host)")
    }

    /// Informational: which product answers. Enterprise answers `sys/license/status`; Community
    /// Edition says `enterprise-only`; OpenBao has no such path.
    /// A token issued in a namespace cannot read that root-namespace path: the edition is then
    /// unknown, which is expected and passes.
    static func edition(licenseStatus: Int, licenseErrors: [String], version: String?, namespacedToken: Bool = false)
        -> PreflightResult
    {
        let suffix = version.map { ", version \($0)" } ?? ""
        switch licenseStatus {
        case 200: return PreflightResult("vault.edition", .pass, "Vault Enterprise\(suffix)")
        case 403 where namespacedToken:
            return PreflightResult(
                "vault.edition", .pass,
                "unknown: sys/license/status exists only in the root namespace, out of a namespaced token's reach\(suffix)"
            )
        case 403:
            return PreflightResult("vault.edition", .warn, "unknown: no read on sys/license/status\(suffix)")
        case 404 where licenseErrors.contains { $0.lowercased().contains("enterprise-only") }:
            return PreflightResult("vault.edition", .pass, "Vault Community Edition\(suffix)")
        case 404: return PreflightResult("vault.edition", .pass, "OpenBao (no sys/license/status)\(suffix)")
        default:
            return PreflightResult("vault.edition", .warn, "unknown: sys/license/status answered HTTP \(licenseStatus)")
        }
    }

    /// Whether the configured namespace is real: Community Edition ignores the header.
    static func namespace(_ namespace: String?, isCommunity: Bool, keyReadable: Bool) -> PreflightResult {
        guard let namespace else { return PreflightResult("vault.namespace", .pass, "none (root namespace)") }
        if isCommunity {
            return PreflightResult(
                "vault.namespace", .warn, "namespace \(namespace) set, but Community Edition ignores namespaces")
        }
        return keyReadable
            ? PreflightResult("vault.namespace", .pass, "namespace \(namespace) reachable")
            : PreflightResult("vault.namespace", .fail, "namespace \(namespace): login or key read failed in it")
    }

    // MARK: local files

    /// The directory that will hold the KMS socket, judged by the very rule the broker applies
    /// at bind time (`KMSRuntime.SocketDirectory.check`): what it refuses fails here.
    static func socketDirectory(path: String, verdict: Result<SocketDirectory.Verdict, ConfigurationError>)
        -> PreflightResult
    {
        switch verdict {
        case .success(.privateDirectory):
            return PreflightResult(
                "socket.directory", .pass, "\(path) and every directory above it: writable only by root or this user")
        case .success(.podVolume(let reason)):
            return PreflightResult(
                "socket.directory", .pass,
                "\(path) is \(reason); accepted: only this Pod's containers can write it")
        case .failure(let error):
            return PreflightResult("socket.directory", .fail, "\(error.description); the broker refuses it")
        }
    }

    /// After `SecretIDFile.load` accepted the file: 0400 is the recommendation, 0600 works.
    static func secretIDFile(path: String, mode: UInt32, ownerUID: UInt32) -> PreflightResult {
        let permissions = mode & 0o7777
        if permissions & 0o200 != 0 {
            return PreflightResult(
                "secret_id.file", .warn,
                "\(path) mode \(octal(permissions)) is writable by its owner; 0400 is enough (rotate by replacing the file)"
            )
        }
        return PreflightResult(
            "secret_id.file", .pass, "\(path) regular file, mode \(octal(permissions)), owner uid \(ownerUID)")
    }

    // MARK: formatting

    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func isIPAddress(_ host: String) -> Bool {
        if host.hasPrefix("[") || host.contains(":") { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in !part.isEmpty && part.allSatisfy(\.isNumber) }
    }
}
