import KMSRuntime
import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// The checks that need the preflight's token: the token itself, its capabilities and the key.
struct PreflightVaultChecks {
    let vault: PreflightVault
    let token: SecretBytes
    let configuration: BrokerConfiguration

    /// `version` is sys/health's, shown with the edition.
    func run(into report: inout PreflightReport, version: String?) {
        // sys/license/status exists only in the root namespace, as the broker's edition probe knows.
        let license = vault.get("sys/license/status", token: token, namespace: nil)
        let edition = PreflightDecisions.edition(
            licenseStatus: license.status, licenseErrors: VaultJSON.errors(in: license.body), version: version,
            namespacedToken: vault.authNamespace != nil)
        if configuration.requireEnterprise && !edition.detail.hasPrefix("Vault Enterprise") {
            report.add("vault.edition", .fail, "--require-enterprise is set, but: \(edition.detail)")
        } else {
            report.add(edition)
        }
        let isCommunity = edition.detail.hasPrefix("Vault Community")
        checkToken(into: &report)
        checkCapabilities(into: &report)
        let keyReadable = checkKey(into: &report)
        report.add(
            PreflightDecisions.namespace(
                configuration.vaultNamespace, isCommunity: isCommunity, keyReadable: keyReadable))
    }

    private func checkToken(into report: inout PreflightReport) {
        let answer = vault.get("auth/token/lookup-self", token: token, namespace: vault.authNamespace)
        guard answer.isSuccess, let lookup = PreflightJSON.decode(PreflightJSON.LookupSelf.self, answer) else {
            let reason = answer.failure?.reason ?? "malformed answer"
            report.add("token.ttl", .warn, "lookup-self failed (\(reason)); TTL not checked")
            return
        }
        report.add(PreflightDecisions.tokenTTL(seconds: lookup.data.ttl))
        report.add(PreflightDecisions.tokenRenewable(lookup.data.renewable ?? false))
    }

    private func checkCapabilities(into report: inout PreflightReport) {
        guard let keyPath = try? TransitKeyPath(parsing: configuration.vaultKeyPath) else { return }
        let needs = PreflightDecisions.capabilityNeeds(mount: keyPath.mount, keyName: keyPath.keyName)
        // Paths are validated (word characters, - . /): no JSON escaping is needed.
        let body = "{\"paths\":[" + needs.map { "\"\($0.path)\"" }.joined(separator: ",") + "]}"
        let answer = vault.post("sys/capabilities-self", body: body, token: token, namespace: vault.namespace)
        guard answer.isSuccess, let decoded = PreflightJSON.decode(PreflightJSON.Capabilities.self, answer),
            let granted = decoded.data
        else {
            let reason = answer.failure?.reason ?? "malformed answer"
            report.add("policy.capabilities", .fail, "sys/capabilities-self failed (\(reason))")
            return
        }
        for need in needs {
            report.add(PreflightDecisions.capabilities(need, granted: granted[need.path] ?? []))
        }
    }

    /// Returns whether the key could be read.
    private func checkKey(into report: inout PreflightReport) -> Bool {
        guard let keyPath = try? TransitKeyPath(parsing: configuration.vaultKeyPath) else { return false }
        let path = "\(keyPath.mount)/keys/\(keyPath.keyName)"
        let answer = vault.get(path, token: token, namespace: vault.namespace)
        if answer.status == 404 {
            report.add("key.exists", .fail, "\(path) not found; create it with type aes256-gcm96")
            return false
        }
        guard answer.isSuccess, let decoded = PreflightJSON.decode(PreflightJSON.Key.self, answer) else {
            let reason = answer.failure?.reason ?? "malformed answer"
            report.add("key.exists", .fail, "\(path) could not be read (\(reason))")
            return false
        }
        report.add("key.exists", .pass, path)
        let data = decoded.data
        var times: [Int64: Int64] = [:]
        for (version, created) in data.keys ?? [:] {
            if let number = Int64(version), let seconds = created.seconds { times[number] = seconds }
        }
        let facts = PreflightDecisions.KeyFacts(
            type: data.type, latestVersion: data.latest_version, minDecryptionVersion: data.min_decryption_version,
            deletionAllowed: data.deletion_allowed ?? false, exportable: data.exportable ?? false,
            allowPlaintextBackup: data.allow_plaintext_backup ?? false,
            autoRotateSeconds: data.auto_rotate_period?.value ?? 0, creationTimes: times)
        for result in PreflightDecisions.key(facts, nowSeconds: Int64(time(nil))) { report.add(result) }
        return true
    }
}
