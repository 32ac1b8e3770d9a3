import KMSCore
import VaultClient

/// Decides which observed `latest_version` becomes the active (encrypting) version
/// (rotation damping, DESIGN section 6): the first observation is adopted at once; after that a
/// higher `latest_version` becomes active only when two consecutive probes have seen it, so every
/// broker of a cluster has seen the new version before any encrypts with it; a `latest_version`
/// below the highest one ever seen means Vault was rolled back: refused, never adopted.
struct ActiveVersionPolicy {
    enum Decision: Equatable {
        case adopt(UInt32)
        /// Keep `current`; `pending` is a newer version seen once, waiting for a second sighting.
        case keep(UInt32, pending: UInt32?)
        /// Vault's latest_version went down: never adopted, reported unhealthy.
        case refuse(reason: String)
    }

    /// A newer latest_version seen on the last probe only.
    private(set) var candidate: UInt32?
    private(set) var highestSeen: UInt32 = 0

    mutating func decide(current: UInt32?, observedLatest: UInt32) -> Decision {
        if observedLatest < highestSeen {
            candidate = nil
            return .refuse(reason: "key rolled back: latest_version \(highestSeen) -> \(observedLatest)")
        }
        highestSeen = observedLatest
        guard let current else { return .adopt(observedLatest) }
        guard observedLatest > current else {
            candidate = nil
            return .keep(current, pending: nil)
        }
        if candidate == observedLatest {
            candidate = nil
            return .adopt(observedLatest)
        }
        candidate = observedLatest
        return .keep(current, pending: observedLatest)
    }
}

/// The broker's view of the Transit key: key_ids per version and the active version. Status and
/// the key_id checks of Decrypt are answered from here with no Vault call.
struct KeyCache {
    enum Update: Equatable {
        case healthy(activeVersion: UInt32, changed: Bool)
        case unhealthy(reason: String)
    }

    let namespace: String
    let mount: String
    let keyName: String
    private(set) var activeVersion: UInt32?
    private(set) var keyIDs: [UInt32: KeyID] = [:]
    private(set) var latestSeenVersion: UInt32 = 0
    /// Creation time of every version ever observed; a change means the key was re-created.
    private var creationTimes: [UInt32: Int64] = [:]
    private var policy = ActiveVersionPolicy()

    init(namespace: String, mount: String, keyName: String) {
        self.namespace = namespace
        self.mount = mount
        self.keyName = keyName
    }

    var activeKeyID: KeyID? { activeVersion.flatMap { keyIDs[$0] } }

    func keyID(forVersion version: UInt32) -> KeyID? { keyIDs[version] }

    /// Vault was seen rolled back (lower latest_version or a re-created version): nothing may be
    /// encrypted until Vault shows the state the broker knew again.
    private(set) var rolledBack = false

    /// A newer version seen once, not yet active (for logs and metrics).
    var pendingVersion: UInt32? { policy.candidate }

    /// Takes a fresh metadata read: recomputes the key_ids and lets the policy pick the active
    /// version. On a refusal the previous state is kept (a wrong key type clears it: no version
    /// of such a key may be used). A version already known whose creation time changed means the
    /// key was deleted and re-created or restored from a backup: refused as a rollback.
    mutating func observe(_ metadata: KeyMetadata) -> Update {
        guard metadata.type == KeyMetadata.requiredType else {
            activeVersion = nil
            keyIDs = [:]
            return .unhealthy(reason: "key type \(metadata.type.prefix(32)) is not \(KeyMetadata.requiredType)")
        }
        for (version, created) in metadata.creationTimes {
            if let known = creationTimes[version], known != created {
                rolledBack = true
                return .unhealthy(reason: "key rolled back: version \(version) was re-created")
            }
        }
        var derived: [UInt32: KeyID] = [:]
        for (version, created) in metadata.creationTimes {
            let scope = KeyScope(
                namespace: namespace, mount: mount, keyName: keyName, version: version, creationTime: created)
            derived[version] = KeyIDDerivation.keyID(for: scope)
        }
        guard derived[metadata.latestVersion] != nil else {
            return .unhealthy(reason: "key \(keyName) metadata lacks version \(metadata.latestVersion)")
        }
        switch policy.decide(current: activeVersion, observedLatest: metadata.latestVersion) {
        case .refuse(let reason):
            rolledBack = true
            return .unhealthy(reason: reason)
        case .keep(let version, _), .adopt(let version):
            guard derived[version] != nil else {
                return .unhealthy(reason: "key \(keyName) metadata lacks version \(version)")
            }
            let changed = version != activeVersion
            rolledBack = false
            keyIDs = derived
            creationTimes.merge(metadata.creationTimes) { old, _ in old }
            activeVersion = version
            latestSeenVersion = max(latestSeenVersion, metadata.latestVersion)
            return .healthy(activeVersion: version, changed: changed)
        }
    }

    /// The key is gone (404): nothing may be encrypted or decrypted until it is read again.
    mutating func forget() {
        activeVersion = nil
        keyIDs = [:]
    }
}
