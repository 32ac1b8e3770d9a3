import COpenSSL
import KMSCore
import KMSRuntime
import VaultClient

/// The METRICS answer: `BrokerService.statistics` (and the key cache and this process' /proc
/// figures) as typed (id, value) pairs. Nothing here calls Vault; the front polls it every few
/// seconds and on each scrape (docs/metrics.md).
extension BrokerService {
    func answerMetrics(_ connection: FrontConnection, _ requestID: UInt32) {
        connection.answer(requestID, .metrics(metricsSnapshot()))
    }

    /// The Vault operations and the ids their call count, error count and duration travel as.
    static let operationIDs: [(VaultOperation, BrokerMetricID, BrokerMetricID, BrokerMetricID)] = [
        (.login, .vaultLoginTotal, .vaultLoginErrors, .vaultLoginMicros),
        (.renew, .vaultRenewTotal, .vaultRenewErrors, .vaultRenewMicros),
        (.encrypt, .vaultEncryptTotal, .vaultEncryptErrors, .vaultEncryptMicros),
        (.decrypt, .vaultDecryptTotal, .vaultDecryptErrors, .vaultDecryptMicros),
        (.readKey, .vaultReadKeyTotal, .vaultReadKeyErrors, .vaultReadKeyMicros),
        (.license, .vaultLicenseTotal, .vaultLicenseErrors, .vaultLicenseMicros),
        (.other, .vaultOtherTotal, .vaultOtherErrors, .vaultOtherMicros),
    ]

    /// Every figure the broker reports, at this moment.
    func metricsSnapshot() -> MetricsAnswer {
        let statistics = self.statistics
        var values: [BrokerMetricID: UInt64] = [:]
        for (operation, total, errors, micros) in Self.operationIDs {
            let entry = statistics.vaultOperations[operation] ?? VaultOperationStatistics()
            values[total] = entry.count
            values[errors] = entry.errorCount
            values[micros] = UInt64(max(entry.totalMillis, 0)) * 1000
        }
        values[.vaultInFlight] = UInt64(transport.inFlightCount)
        values[.vaultAddressCount] = UInt64(addresses.addresses.count)
        values[.vaultAddressIndex] = UInt64(addresses.currentIndex)
        values[.vaultAddressFailovers] = addresses.selector.failovers

        values[.tokenValid] = tokens.currentToken != nil ? 1 : 0
        values[.tokenSecondsToExpiry] = UInt64(max(statistics.tokenSecondsToExpiry ?? 0, 0))
        values[.loginSuccesses] = statistics.tokens.loginSuccesses
        values[.loginFailures] = statistics.tokens.loginFailures
        values[.renewalSuccesses] = statistics.tokens.renewalSuccesses
        values[.renewalFailures] = statistics.tokens.renewalFailures

        let cache = keyProbe.cache
        values[.activeKeyVersion] = UInt64(statistics.activeKeyVersion ?? 0)
        values[.activeKeyIDHash] = cache.activeKeyID.map { Self.fnv1a64($0.description) } ?? 0
        values[.keyVersionsKnown] = UInt64(cache.keyIDs.count)
        switch keyProbe.health {
        case .unknown: values[.keyState] = 0
        case .healthy: values[.keyState] = 1
        case .unhealthy: values[.keyState] = 2
        }
        values[.brokerHealthy] = statistics.healthReason == "ok" ? 1 : 0
        values[.pendingKeyVersion] = UInt64(statistics.pendingKeyVersion ?? 0)
        values[.keyRolledBack] = statistics.keyRolledBack ? 1 : 0
        values[.deepProbeSuccesses] = statistics.deepProbeSuccesses
        values[.deepProbeFailures] = statistics.deepProbeFailures

        values[.tlsVerificationDisabled] = statistics.tlsSkipVerify ? 1 : 0
        values[.fipsEnabled] = EVP_default_properties_is_fips_enabled(nil) == 1 ? 1 : 0
        values[.vaultEdition] = Self.editionNumber(statistics.vaultEdition)

        let process = ProcessStatistics.current()
        values[.processCPUMicros] = process.cpuMicros
        values[.processResidentBytes] = process.residentBytes
        values[.processOpenFDs] = process.openFDs
        values[.processStartTimeSeconds] = process.startTimeSeconds
        values[.frontConnections] = UInt64(statistics.frontConnections)
        values[.frontRequestsInFlight] = UInt64(statistics.frontRequestsInFlight)

        values[.foreignKeyIDDecrypts] = foreignKeyIDDecrypts
        values[.foreignKeyIDRefused] = foreignKeyIDRefused
        values[.activeKeyVersionSince] = UInt64(max(keyProbe.activeSinceSeconds ?? 0, 0))
        for (slot, keyID) in Self.hashSlots(cache).enumerated() {
            values[BrokerMetricID.keyIDSlot(slot, word: 0)!] = UInt64(keyID.version)
            let digest = KeyIDDerivation.sha256(Array(keyID.description.utf8))
            for word in 0..<4 {
                values[BrokerMetricID.keyIDSlot(slot, word: word + 1)!] = digest[(word * 8)..<(word * 8 + 8)].reduce(0)
                {
                    $0 << 8 | UInt64($1)
                }
            }
        }
        for (index, operation) in VSOOperation.allCases.enumerated() {
            var buckets = [UInt64](repeating: 0, count: VaultDurationBuckets.boundsMillis.count)
            for (ours, entry) in statistics.vaultOperations where VSOOperation(ours) == operation {
                for bucket in buckets.indices { buckets[bucket] &+= entry.buckets[bucket] }
            }
            for (bucket, count) in buckets.enumerated() {
                values[BrokerMetricID.vsoBucket(operation: index, bucket: bucket)!] = count
            }
        }
        return MetricsAnswer(code: .ok, opensslVersion: Self.opensslVersion, values: values)
    }

    /// The key_ids whose SHA-256 travels in the hash slots: the active one first, then the newest
    /// other known versions (`BrokerMetricID.keyIDSlots` in all).
    static func hashSlots(_ cache: KeyCache) -> [KeyID] {
        var slots: [KeyID] = []
        if let active = cache.activeKeyID { slots.append(active) }
        for version in cache.keyIDs.keys.sorted(by: >) where slots.count < BrokerMetricID.keyIDSlots {
            if let keyID = cache.keyIDs[version], keyID != cache.activeKeyID { slots.append(keyID) }
        }
        return slots
    }

    /// The edition as the number `BrokerMetricID.vaultEdition` carries.
    static func editionNumber(_ edition: String) -> UInt64 {
        switch edition {
        case "community": 1
        case "enterprise": 2
        case "openbao": 3
        default: 0
        }
    }

    /// `OpenSSL_version(OPENSSL_VERSION)`, e.g. "OpenSSL 3.0.15 3 Sep 2024".
    static var opensslVersion: String {
        guard let text = OpenSSL_version(Int32(OPENSSL_VERSION)) else { return "" }
        return String(cString: text)
    }

    /// FNV-1a 64 of `text`: identifies the active key_id on a dashboard without showing it.
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return hash
    }
}
