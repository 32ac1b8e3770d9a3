import KMSCore

/// Key metadata as read from `GET <mount>/keys/<name>`, reduced to what the broker uses.
public struct KeyMetadata: Equatable, Sendable {
    public static let requiredType = "aes256-gcm96"

    public var type: String
    public var latestVersion: UInt32
    public var minDecryptionVersion: UInt32
    /// Creation time (Unix seconds) of every version Vault still lists.
    public var creationTimes: [UInt32: Int64]

    /// Reduces Vault's answer; nil when it is not a usable key description.
    init?(_ response: VaultJSON.KeyResponse) {
        let data = response.data
        guard let latest = UInt32(exactly: data.latest_version), latest >= 1,
            let minimum = UInt32(exactly: max(0, data.min_decryption_version))
        else { return nil }
        var times: [UInt32: Int64] = [:]
        for (versionText, time) in data.keys {
            guard let version = parseVersionNumber(versionText) else { return nil }
            if let seconds = time.seconds { times[version] = seconds }
        }
        self.init(type: data.type, latestVersion: latest, minDecryptionVersion: minimum, creationTimes: times)
    }

    init(type: String, latestVersion: UInt32, minDecryptionVersion: UInt32, creationTimes: [UInt32: Int64]) {
        self.type = type
        self.latestVersion = latestVersion
        self.minDecryptionVersion = minDecryptionVersion
        self.creationTimes = creationTimes
    }
}
