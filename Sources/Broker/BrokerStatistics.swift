import KMSCore
import KMSRuntime
import VaultClient

/// Vault calls of one kind since start. Bounded: one entry per `VaultOperation`.
public struct VaultOperationStatistics: Equatable, Sendable {
    /// Upper bounds (milliseconds) of the duration histogram buckets; a last, implicit bucket
    /// holds everything slower.
    public static let bucketBoundsMillis: [Int64] = VaultDurationBuckets.boundsMillis

    public var count: UInt64 = 0
    /// Calls that did not answer 2xx, by error class (`BrokerErrorCode` names: `unavailable`,
    /// `permissionDenied`, `throttled`, `sealed`, ...).
    public var errors: [String: UInt64] = [:]
    public var totalMillis: Int64 = 0
    /// Non-cumulative counts per bucket of `bucketBoundsMillis`, plus one for slower calls.
    public var buckets: [UInt64] = Array(repeating: 0, count: VaultOperationStatistics.bucketBoundsMillis.count + 1)

    public var errorCount: UInt64 { errors.values.reduce(0, +) }

    mutating func record(millis: Int64, errorClass: String?) {
        count += 1
        totalMillis += millis
        let index = Self.bucketBoundsMillis.firstIndex { millis <= $0 } ?? Self.bucketBoundsMillis.count
        buckets[index] += 1
        if let errorClass { errors[errorClass, default: 0] += 1 }
    }
}

/// HashiCorp's operation names (`vso_client_operations_*{operation}`, from the Vault Secrets
/// Operator's client): reads are GETs, writes every other Transit or token call.
public enum VSOOperation: String, CaseIterable, Sendable {
    case login, renew, read, write

    init(_ operation: VaultOperation) {
        switch operation {
        case .login: self = .login
        case .renew: self = .renew
        case .readKey, .license: self = .read
        case .encrypt, .decrypt, .other: self = .write
        }
    }
}

/// A snapshot of what the broker knows about itself, for the metrics endpoint. Nothing secret:
/// no token, no secret ID, no key material.
public struct BrokerStatistics: Sendable {
    /// `ok` or the short healthz reason.
    public var healthReason: String
    public var tokens: TokenCounters
    /// Seconds until the token expires; nil when none is held or it does not expire.
    public var tokenSecondsToExpiry: Int64?
    /// The Transit key version Encrypt uses; nil before the key was read.
    public var activeKeyVersion: UInt32?
    /// A newer version seen once and waiting for its second observation.
    public var pendingKeyVersion: UInt32?
    /// Vault reported a lower latest_version or a re-created version: refused.
    public var keyRolledBack: Bool
    /// Deep probe (encrypt/decrypt round trip) outcomes.
    public var deepProbeSuccesses: UInt64
    public var deepProbeFailures: UInt64
    /// `--tls-skip-verify` is on (exported as a gauge that stays 1).
    public var tlsSkipVerify: Bool
    /// The edition `sys/license/status` suggested (`enterprise`, `community`, `openbao`, `unknown`).
    public var vaultEdition: String
    public var vaultOperations: [VaultOperation: VaultOperationStatistics]
    /// Front requests waiting for Vault, and front connections open.
    public var frontRequestsInFlight: Int
    public var frontConnections: Int
}
