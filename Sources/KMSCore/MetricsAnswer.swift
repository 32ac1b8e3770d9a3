/// The METRICS answer (0x0B): the broker's figures for the front's `/metrics` page
/// (docs/PROTOCOL.md, "METRICS answer"; docs/metrics.md names the exposed metrics).
///
/// Layout after the `u8 code` (only when the code is ok):
/// `string openssl_version (64)`, `u16 count (<= Limits.maxMetricsEntries)`, then `count` pairs of
/// `u16 metric id` and `u64 value`. Ids must be known `BrokerMetricID`s and appear at most once.
/// Values are plain numbers: no label, path, key name or uid can travel in this message.
public struct MetricsAnswer: Equatable, Sendable {
    public var code: BrokerErrorCode
    /// `OpenSSL_version(OPENSSL_VERSION)` of the broker, shown as a build-info label (bounded).
    public var opensslVersion: String
    public var values: [BrokerMetricID: UInt64]

    public init(code: BrokerErrorCode, opensslVersion: String = "", values: [BrokerMetricID: UInt64] = [:]) {
        self.code = code
        self.opensslVersion = opensslVersion
        self.values = values
    }

    public func payload() -> [UInt8] {
        var writer = ByteWriter(capacity: 80 + values.count * 10)
        writer.u8(code.rawValue)
        guard code == .ok else { return writer.bytes }
        writer.field(Array(opensslVersion.utf8.prefix(Limits.maxVersionStringBytes)))
        let entries = values.sorted { $0.key.rawValue < $1.key.rawValue }.prefix(Limits.maxMetricsEntries)
        writer.u16(UInt16(entries.count))
        for (id, value) in entries {
            writer.u16(id.rawValue)
            writer.u64(value)
        }
        return writer.bytes
    }

    init(reading reader: inout ByteReader) throws(BrokerProtocolError) {
        let rawCode = try reader.u8()
        guard let code = BrokerErrorCode(rawValue: rawCode) else { throw .unknownErrorCode(rawCode) }
        guard code == .ok else {
            self = MetricsAnswer(code: code)
            return
        }
        let openssl = try reader.field(limit: Limits.maxVersionStringBytes, name: "openssl_version")
        guard let opensslVersion = String(validating: openssl, as: UTF8.self) else {
            throw .invalidUTF8("openssl_version")
        }
        let count = Int(try reader.u16())
        guard count <= Limits.maxMetricsEntries else { throw .fieldTooLong("metrics") }
        var values: [BrokerMetricID: UInt64] = [:]
        for _ in 0..<count {
            let raw = try reader.u16()
            guard let id = BrokerMetricID(rawValue: raw) else { throw .unknownMetricID(raw) }
            guard values[id] == nil else { throw .duplicateMetricID(raw) }
            values[id] = try reader.u64()
        }
        self = MetricsAnswer(code: code, opensslVersion: opensslVersion, values: values)
    }
}

/// The figures a METRICS answer may carry. The numbers are part of broker protocol v1: never
/// reuse one. Durations are microseconds (Vault call durations are tracked with millisecond
/// precision), CPU time is microseconds, sizes are bytes.
public enum BrokerMetricID: UInt16, Sendable, CaseIterable {
    // Vault operations (counted at the broker's transport, by the request's API path).
    case vaultLoginTotal = 0x0101, vaultLoginErrors, vaultLoginMicros
    case vaultRenewTotal = 0x0111, vaultRenewErrors, vaultRenewMicros
    case vaultEncryptTotal = 0x0121, vaultEncryptErrors, vaultEncryptMicros
    case vaultDecryptTotal = 0x0131, vaultDecryptErrors, vaultDecryptMicros
    case vaultReadKeyTotal = 0x0141, vaultReadKeyErrors, vaultReadKeyMicros
    case vaultOtherTotal = 0x0151, vaultOtherErrors, vaultOtherMicros
    /// Vault requests sent and not yet answered.
    case vaultInFlight = 0x0160
    case vaultLicenseTotal = 0x0171, vaultLicenseErrors, vaultLicenseMicros
    /// Vault addresses configured (`--vault-address a,b,c`), the index (0-based, in the order
    /// given) of the one serving, and how often the broker moved away from one that could not serve.
    case vaultAddressCount = 0x0181, vaultAddressIndex, vaultAddressFailovers

    // Token and key state.
    /// 1 while the broker holds an unexpired token.
    case tokenValid = 0x0201
    /// Seconds until the token's lease ends (0 without a token).
    case tokenSecondsToExpiry = 0x0202
    /// Outcomes counted by the token lifecycle itself (a login that answered 2xx but carried no
    /// usable token is a failure here, and a success in the Vault call counts).
    case loginSuccesses = 0x0203, loginFailures, renewalSuccesses, renewalFailures
    /// The Transit key version used for Encrypt (0 when not known yet).
    case activeKeyVersion = 0x0211
    /// FNV-1a 64 of the active key_id (0 when not known): the front shows it as a hex label.
    case activeKeyIDHash = 0x0212
    /// Key versions whose key_id the broker can derive (the decryptable window).
    case keyVersionsKnown = 0x0213
    /// 0 unknown (not read yet), 1 healthy, 2 unhealthy.
    case keyState = 0x0214
    /// 1 when the broker's Status healthz is "ok".
    case brokerHealthy = 0x0215
    /// A newer key version seen once and waiting to be confirmed (rotation damping); 0 if none.
    case pendingKeyVersion = 0x0216
    /// 1 when Vault reported a lower or re-created latest version and the broker refused it.
    case keyRolledBack = 0x0217
    /// Deep probe (Encrypt/Decrypt round trip at Vault) outcomes.
    case deepProbeSuccesses = 0x0218, deepProbeFailures

    // Configuration and build.
    /// 1 when TLS verification of Vault is disabled (development only).
    case tlsVerificationDisabled = 0x0301
    /// 1 when OpenSSL's default properties select the FIPS provider.
    case fipsEnabled = 0x0302
    /// What `sys/license/status` suggested: 0 unknown, 1 community, 2 enterprise, 3 openbao.
    case vaultEdition = 0x0303

    // The broker process (from /proc/self).
    case processCPUMicros = 0x0401
    case processResidentBytes = 0x0402
    case processOpenFDs = 0x0403
    case processStartTimeSeconds = 0x0404
    /// Front connections open at the broker and their requests waiting for Vault.
    case frontConnections = 0x0411
    case frontRequestsInFlight = 0x0412

    // Takeover of data written by another plugin (`--accept-foreign-key-ids`).
    /// Decrypts answered although the key_id was not of this plugin's scheme (compatibility mode).
    case foreignKeyIDDecrypts = 0x0601
    /// Decrypts refused because the key_id was foreign (mode off, or the version is not known).
    case foreignKeyIDRefused = 0x0602
    /// Unix seconds when this broker adopted the active key version (0 unknown).
    case activeKeyVersionSince = 0x0603

    // The SHA-256 of key_ids, as kube-apiserver hashes them for `key_id_hash` labels: slot 0 the
    // active key_id, slots 1-3 the newest other known versions. Each slot: the Transit version
    // (0: empty slot) and the 32-byte digest as four big-endian u64 words.
    case keyIDSlot0Version = 0x0610, keyIDSlot0Hash0, keyIDSlot0Hash1, keyIDSlot0Hash2, keyIDSlot0Hash3
    case keyIDSlot1Version = 0x0618, keyIDSlot1Hash0, keyIDSlot1Hash1, keyIDSlot1Hash2, keyIDSlot1Hash3
    case keyIDSlot2Version = 0x0620, keyIDSlot2Hash0, keyIDSlot2Hash1, keyIDSlot2Hash2, keyIDSlot2Hash3
    case keyIDSlot3Version = 0x0628, keyIDSlot3Hash0, keyIDSlot3Hash1, keyIDSlot3Hash2, keyIDSlot3Hash3

    // Vault call durations by HashiCorp's operation names (login, renew, read, write): counts
    // per bucket of `VaultDurationBuckets.boundsMillis` (non-cumulative); the count above the
    // last bound is the operation's total minus these.
    case vsoLoginBucket0 = 0x0701, vsoLoginBucket1, vsoLoginBucket2, vsoLoginBucket3, vsoLoginBucket4, vsoLoginBucket5,
        vsoLoginBucket6, vsoLoginBucket7, vsoLoginBucket8, vsoLoginBucket9, vsoLoginBucket10
    case vsoRenewBucket0 = 0x0711, vsoRenewBucket1, vsoRenewBucket2, vsoRenewBucket3, vsoRenewBucket4, vsoRenewBucket5,
        vsoRenewBucket6, vsoRenewBucket7, vsoRenewBucket8, vsoRenewBucket9, vsoRenewBucket10
    case vsoReadBucket0 = 0x0721, vsoReadBucket1, vsoReadBucket2, vsoReadBucket3, vsoReadBucket4, vsoReadBucket5,
        vsoReadBucket6, vsoReadBucket7, vsoReadBucket8, vsoReadBucket9, vsoReadBucket10
    case vsoWriteBucket0 = 0x0731, vsoWriteBucket1, vsoWriteBucket2, vsoWriteBucket3, vsoWriteBucket4, vsoWriteBucket5,
        vsoWriteBucket6, vsoWriteBucket7, vsoWriteBucket8, vsoWriteBucket9, vsoWriteBucket10
}

extension BrokerMetricID {
    /// Slot `slot` (0...3) of the key_id hashes: the version id, then the four digest words.
    public static func keyIDSlot(_ slot: Int, word: Int) -> BrokerMetricID? {
        guard (0..<keyIDSlots).contains(slot), (0...4).contains(word) else { return nil }
        return BrokerMetricID(rawValue: UInt16(0x0610 + slot * 8 + word))
    }

    /// Key_id hash slots in a METRICS answer.
    public static let keyIDSlots = 4

    /// Bucket `bucket` of HashiCorp operation `operation` (0 login, 1 renew, 2 read, 3 write).
    public static func vsoBucket(operation: Int, bucket: Int) -> BrokerMetricID? {
        guard (0..<4).contains(operation), VaultDurationBuckets.boundsMillis.indices.contains(bucket) else {
            return nil
        }
        return BrokerMetricID(rawValue: UInt16(0x0701 + operation * 0x10 + bucket))
    }
}

/// Upper bounds (milliseconds) of the Vault call duration histograms, shared by the broker (which
/// counts) and the front (which renders `vso_client_operations_time_seconds`). Each is one of the
/// Vault Secrets Operator's bucket bounds (0.005 s ... 10 s); docs/metrics.md says why not all 33.
public enum VaultDurationBuckets {
    public static let boundsMillis: [Int64] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]
}
