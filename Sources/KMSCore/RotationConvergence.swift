/// `vault-kube-kms rotation status`: does every kube-apiserver use the key_id this plugin encrypts
/// with? Pure: the pages are read by the command, time is a parameter.
///
/// kube-apiserver labels key_ids as `sha256:<hex of SHA-256(key_id)>` (no salt; k8s.io/apiserver
/// `storage/value/encrypt/envelope/metrics`, `getHash`) and sets
/// `apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds{provider_name,
/// key_id_hash[, apiserver_id_hash]}` to the time of each Status call that returned that key_id.
/// Our page exports the same hash of our active and known key_ids (`vault_kube_kms_key_id_hash_info`)
/// and when the active one was adopted (`vault_kube_kms_key_active_since_timestamp_seconds`).
public enum RotationConvergence {
    public static let statusFamily = "apiserver_envelope_encryption_key_id_hash_status_last_timestamp_seconds"
    public static let hashFamily = "vault_kube_kms_key_id_hash_info"
    public static let sinceFamily = "vault_kube_kms_key_active_since_timestamp_seconds"

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// What one plugin page says about its keys.
    public struct PluginKeys: Equatable, Sendable {
        public var activeHash: String
        public var activeVersion: Int
        /// Every exported hash (active included) and its Transit version.
        public var versions: [String: Int]
        public var activeSince: Double

        public init(activeHash: String, activeVersion: Int, versions: [String: Int], activeSince: Double) {
            self.activeHash = activeHash
            self.activeVersion = activeVersion
            self.versions = versions
            self.activeSince = activeSince
        }
    }

    /// The newest Status key_id hash one apiserver reported for the provider.
    public struct Apiserver: Equatable, Sendable {
        /// `apiserver_id_hash`, or the page's source when the apiserver is older than the label.
        public var name: String
        public var hash: String
        public var lastStatus: Double

        public init(name: String, hash: String, lastStatus: Double) {
            self.name = name
            self.hash = hash
            self.lastStatus = lastStatus
        }
    }

    public enum Verdict: String, Sendable {
        case converged, pending, stuck

        /// The command's exit status (docs/operations.md); 3 is "could not decide".
        public var exitCode: Int32 {
            switch self {
            case .converged: 0
            case .pending: 1
            case .stuck: 2
            }
        }
    }

    public struct Report: Equatable, Sendable {
        public var verdict: Verdict
        public var lines: [String]
    }

    public static func pluginKeys(_ samples: [PrometheusSample], source: String) throws(Failure) -> PluginKeys {
        var versions: [String: Int] = [:]
        var active: (String, Int)?
        for sample in samples where sample.name == hashFamily {
            guard let hash = sample.labels["key_id_hash"],
                let version = sample.labels["key_version"].flatMap({ Int($0) })
            else { continue }
            versions[hash] = version
            if sample.labels["state"] == "active" { active = (hash, version) }
        }
        guard let active else {
            throw Failure(
                "\(source): no \(hashFamily){state=\"active\"}: not a vault-kube-kms page, or no active key yet")
        }
        let since = samples.first { $0.name == sinceFamily }?.value ?? 0
        return PluginKeys(activeHash: active.0, activeVersion: active.1, versions: versions, activeSince: since)
    }

    /// The apiservers of one page. `provider` selects the KMS provider (`name:` in the
    /// EncryptionConfiguration); without it the page must show exactly one.
    public static func apiservers(_ samples: [PrometheusSample], source: String, provider: String?) throws(Failure)
        -> [Apiserver]
    {
        let status = samples.filter { $0.name == statusFamily && $0.labels["key_id_hash"]?.isEmpty == false }
        let providers = Set(status.compactMap { $0.labels["provider_name"] })
        let chosen: String
        if let provider {
            guard providers.contains(provider) else {
                throw Failure(
                    "\(source): no \(statusFamily) for provider \(provider) (found: \(providers.sorted().joined(separator: ", ")))"
                )
            }
            chosen = provider
        } else {
            guard providers.count == 1, let only = providers.first else {
                throw Failure(
                    providers.isEmpty
                        ? "\(source): no \(statusFamily): not a kube-apiserver page, or no KMS v2 Status call yet"
                        : "\(source): several KMS providers (\(providers.sorted().joined(separator: ", "))): pass --provider-name"
                )
            }
            chosen = only
        }
        var newest: [String: Apiserver] = [:]
        for sample in status where sample.labels["provider_name"] == chosen {
            let id = sample.labels["apiserver_id_hash"].flatMap { $0.isEmpty ? nil : $0 } ?? source
            let hash = sample.labels["key_id_hash"] ?? ""
            if let current = newest[id], current.lastStatus >= sample.value { continue }
            newest[id] = Apiserver(name: id, hash: hash, lastStatus: sample.value)
        }
        return newest.values.sorted { $0.name < $1.name }
    }

    /// converged: every apiserver's newest Status key_id is the active one (of every plugin page).
    /// pending: some report an older key_id of ours, and the rotation is younger than `stuckAfter`.
    /// stuck: pending for longer than that, or an apiserver reports a key_id none of our pages
    /// knows, or the plugins disagree on the active key_id for longer than that.
    public static func decide(plugins: [PluginKeys], apiservers: [Apiserver], now: Double, stuckAfter: Double)
        -> Report
    {
        let actives = Set(plugins.map(\.activeHash))
        var versions: [String: Int] = [:]
        for plugin in plugins { versions.merge(plugin.versions) { a, _ in a } }
        let since = plugins.map(\.activeSince).max() ?? 0
        let age = since > 0 ? max(0, now - since) : Double.infinity
        let overdue = age > stuckAfter
        var pending: [String] = []
        var stuck: [String] = []
        if actives.count > 1 {
            let line =
                "plugins disagree on the active key_id (versions \(plugins.map { String($0.activeVersion) }.sorted().joined(separator: ", ")))"
            if overdue { stuck.append(line) } else { pending.append(line) }
        }
        for apiserver in apiservers where !actives.contains(apiserver.hash) {
            let ago = Int(max(0, now - apiserver.lastStatus))
            let what = "apiserver \(apiserver.name): last Status \(ago) s ago returned"
            if let version = versions[apiserver.hash] {
                let line = "\(what) key_id version \(version) (\(apiserver.hash))"
                if overdue { stuck.append(line) } else { pending.append(line) }
            } else {
                stuck.append("\(what) \(apiserver.hash), a key_id this plugin does not know")
            }
        }
        let activeVersions = Set(plugins.map(\.activeVersion)).sorted().map(String.init).joined(separator: ", ")
        let started = age.isFinite ? "\(Int(age)) s ago" : "at an unknown time"
        if !stuck.isEmpty {
            return Report(
                verdict: .stuck,
                lines: [
                    "stuck: rotation to key version \(activeVersions) began \(started) (stuck after \(Int(stuckAfter)) s)"
                ]
                    + (stuck + pending).map { "  " + $0 })
        }
        if !pending.isEmpty {
            return Report(
                verdict: .pending,
                lines: ["pending: rotation to key version \(activeVersions) began \(started)"]
                    + pending.map { "  " + $0 })
        }
        return Report(
            verdict: .converged,
            lines: [
                "converged: \(apiservers.count) apiserver(s) use the active key_id, version \(activeVersions) (\(actives.sorted().joined(separator: ", ")))"
            ])
    }
}
