import KMSRuntime
import Testing

@testable import Broker
@testable import Preflight
@testable import VaultClient

struct PreflightCapabilityTests {
    private let needs = PreflightDecisions.capabilityNeeds(mount: "transit", keyName: "kek")
    private var encrypt: PreflightDecisions.CapabilityNeed { needs[0] }
    private var keyRead: PreflightDecisions.CapabilityNeed { needs[2] }
    private var license: PreflightDecisions.CapabilityNeed { needs[3] }

    @Test func theNeedsAreExactlyTheFourPathsOfTheLeastPrivilegePolicy() {
        #expect(
            needs.map(\.path) == [
                "transit/encrypt/kek", "transit/decrypt/kek", "transit/keys/kek", "sys/license/status",
            ])
        #expect(needs.map(\.required) == [["update"], ["update"], ["read"], ["read"]])
    }

    @Test func exactlyTheNeededCapabilityPasses() {
        #expect(PreflightDecisions.capabilities(encrypt, granted: ["update"]).outcome == .pass)
        #expect(PreflightDecisions.capabilities(keyRead, granted: ["read"]).outcome == .pass)
    }

    @Test func denyOrNothingOnARequiredPathFails() {
        #expect(PreflightDecisions.capabilities(encrypt, granted: ["deny"]).outcome == .fail)
        #expect(PreflightDecisions.capabilities(encrypt, granted: []).outcome == .fail)
    }

    @Test func aMissingCapabilityFailsEvenWhenOthersAreGranted() {
        let result = PreflightDecisions.capabilities(encrypt, granted: ["read", "create"])
        #expect(result.outcome == .fail)
        #expect(result.detail.contains("missing update"))
    }

    @Test func broaderCapabilitiesWarnAndNameTheExtraOnes() {
        let result = PreflightDecisions.capabilities(keyRead, granted: ["read", "update", "delete"])
        #expect(result.outcome == .warn)
        #expect(result.detail.contains("delete, update"))
    }

    @Test func createOnEncryptWarnsThatItAllowsUpsert() {
        let result = PreflightDecisions.capabilities(encrypt, granted: ["create", "update"])
        #expect(result.outcome == .warn)
        #expect(result.detail.contains("create a missing key"))
    }

    @Test func aRootCapabilityWarns() {
        #expect(PreflightDecisions.capabilities(encrypt, granted: ["root"]).outcome == .warn)
    }

    @Test func theOptionalLicensePathOnlyWarnsWhenMissing() {
        #expect(PreflightDecisions.capabilities(license, granted: ["deny"]).outcome == .warn)
        #expect(PreflightDecisions.capabilities(license, granted: ["read"]).outcome == .pass)
    }
}

struct PreflightTokenTests {
    @Test func aTTLUpTo24HoursPasses() {
        #expect(PreflightDecisions.tokenTTL(seconds: 3600).outcome == .pass)
        #expect(PreflightDecisions.tokenTTL(seconds: 24 * 3600).outcome == .pass)
    }

    @Test func aTTLAbove24HoursWarns() {
        #expect(PreflightDecisions.tokenTTL(seconds: 24 * 3600 + 1).outcome == .warn)
        #expect(PreflightDecisions.tokenTTL(seconds: 768 * 3600).detail.contains("32d"))
    }

    @Test func aTokenThatNeverExpiresWarns() {
        #expect(PreflightDecisions.tokenTTL(seconds: 0).outcome == .warn)
    }

    @Test func aNonRenewableTokenWarns() {
        #expect(PreflightDecisions.tokenRenewable(false).outcome == .warn)
        #expect(PreflightDecisions.tokenRenewable(true).outcome == .pass)
    }
}

struct PreflightKeyTests {
    private let now: Int64 = 1_800_000_000
    private let day: Int64 = 86400

    private func facts(_ change: (inout PreflightDecisions.KeyFacts) -> Void = { _ in }) -> PreflightDecisions.KeyFacts
    {
        var facts = PreflightDecisions.KeyFacts(
            type: "aes256-gcm96", latestVersion: 1, minDecryptionVersion: 1, deletionAllowed: false, exportable: false,
            allowPlaintextBackup: false, autoRotateSeconds: 30 * 86400, creationTimes: [1: 1_700_000_000])
        change(&facts)
        return facts
    }

    private func outcome(_ check: String, _ facts: PreflightDecisions.KeyFacts) -> PreflightOutcome? {
        PreflightDecisions.key(facts, nowSeconds: now).first { $0.check == check }?.outcome
    }

    @Test func aWellConfiguredKeyOnlyWarnsAboutBackup() {
        let results = PreflightDecisions.key(facts(), nowSeconds: now)
        #expect(results.filter { $0.outcome != .pass }.map(\.check) == ["key.backup"])
    }

    @Test func anotherKeyTypeFails() {
        #expect(outcome("key.type", facts { $0.type = "chacha20-poly1305" }) == .fail)
    }

    @Test func deletionAllowedFails() {
        #expect(outcome("key.deletion", facts { $0.deletionAllowed = true }) == .fail)
    }

    @Test func rotationUnsetOrLongerThan90DaysWarns() {
        #expect(outcome("key.rotation", facts { $0.autoRotateSeconds = 0 }) == .warn)
        #expect(outcome("key.rotation", facts { $0.autoRotateSeconds = 91 * 86400 }) == .warn)
        #expect(outcome("key.rotation", facts { $0.autoRotateSeconds = 90 * 86400 }) == .pass)
    }

    @Test func aMinimumDecryptionVersionAboveARecentlyRetiredVersionWarns() {
        let recent = facts {
            $0.latestVersion = 3
            $0.minDecryptionVersion = 3
            $0.creationTimes = [3: now - 2 * day]
        }
        #expect(outcome("key.min_decryption_version", recent) == .warn)
    }

    @Test func aMinimumDecryptionVersionAboveLongRetiredVersionsPasses() {
        let old = facts {
            $0.latestVersion = 3
            $0.minDecryptionVersion = 3
            $0.creationTimes = [3: now - 30 * day]
        }
        #expect(outcome("key.min_decryption_version", old) == .pass)
    }

    @Test func backupNeedsBothExportableAndPlaintextBackup() {
        #expect(PreflightDecisions.backup(exportable: true, allowPlaintextBackup: false).outcome == .warn)
        #expect(PreflightDecisions.backup(exportable: true, allowPlaintextBackup: true).outcome == .pass)
    }
}

struct PreflightServerAndFileTests {
    @Test func healthStatusesMapToReachability() {
        #expect(PreflightDecisions.health(status: 200, transportError: nil, address: "a").outcome == .pass)
        #expect(PreflightDecisions.health(status: 429, transportError: nil, address: "a").outcome == .pass)
        #expect(PreflightDecisions.health(status: 503, transportError: nil, address: "a").detail.contains("sealed"))
        #expect(PreflightDecisions.health(status: 0, transportError: "connect failed", address: "a").outcome == .fail)
    }

    @Test func plainHTTPWarnsAndAFailedHandshakeFails() {
        #expect(
            PreflightDecisions.tls(isHTTPS: false, skipVerify: false, tlsFailed: false, caFile: nil).outcome == .warn)
        #expect(PreflightDecisions.tls(isHTTPS: true, skipVerify: false, tlsFailed: true, caFile: nil).outcome == .fail)
        #expect(PreflightDecisions.tls(isHTTPS: true, skipVerify: true, tlsFailed: false, caFile: nil).outcome == .warn)
        #expect(
            PreflightDecisions.tls(isHTTPS: true, skipVerify: false, tlsFailed: false, caFile: "/ca").outcome == .pass)
    }

    @Test func anIPAddressOverHTTPSSendsNoSNIAndWarns() {
        #expect(PreflightDecisions.sni(isHTTPS: true, host: "10.0.0.5", serverName: nil).outcome == .warn)
        #expect(PreflightDecisions.sni(isHTTPS: true, host: "vault.example", serverName: nil).outcome == .pass)
        #expect(PreflightDecisions.sni(isHTTPS: true, host: "10.0.0.5", serverName: "vault.example").outcome == .pass)
    }

    @Test func editionIsToldApartByTheLicenseAnswer() {
        let enterprise = PreflightDecisions.edition(licenseStatus: 200, licenseErrors: [], version: "1.17.2+ent")
        let community = PreflightDecisions.edition(
            licenseStatus: 404, licenseErrors: ["enterprise-only feature"], version: nil)
        let openbao = PreflightDecisions.edition(licenseStatus: 404, licenseErrors: ["unsupported path"], version: nil)
        #expect(enterprise.detail.hasPrefix("Vault Enterprise"))
        #expect(community.detail.hasPrefix("Vault Community"))
        #expect(openbao.detail.hasPrefix("OpenBao"))
        #expect(PreflightDecisions.edition(licenseStatus: 403, licenseErrors: [], version: nil).outcome == .warn)
        let namespaced = PreflightDecisions.edition(
            licenseStatus: 403, licenseErrors: [], version: nil, namespacedToken: true)
        #expect(namespaced.outcome == .pass)
        #expect(namespaced.detail.contains("root namespace"))
    }

    @Test func aNamespaceOnCommunityEditionWarns() {
        #expect(PreflightDecisions.namespace("team", isCommunity: true, keyReadable: true).outcome == .warn)
        #expect(PreflightDecisions.namespace("team", isCommunity: false, keyReadable: false).outcome == .fail)
        #expect(PreflightDecisions.namespace(nil, isCommunity: true, keyReadable: true).outcome == .pass)
    }

    @Test func theSocketDirectoryIsJudgedByTheBrokersOwnRule() {
        func judge(_ verdict: Result<SocketDirectory.Verdict, ConfigurationError>) -> PreflightResult {
            PreflightDecisions.socketDirectory(path: "/run/kms", verdict: verdict)
        }
        #expect(judge(.success(.privateDirectory)).outcome == .pass)
        let pod = judge(.success(.podVolume("a tmpfs mounted here alone")))
        #expect(pod.outcome == .pass && pod.detail.contains("a tmpfs mounted here alone"))
        let refused = judge(.failure(ConfigurationError("socket directory /run/kms (mode 777) is writable")))
        #expect(refused.outcome == .fail && refused.detail.contains("the broker refuses it"))
    }

    @Test func anOwnerWritableSecretIDFileWarns() {
        #expect(PreflightDecisions.secretIDFile(path: "/s", mode: 0o600, ownerUID: 0).outcome == .warn)
        #expect(PreflightDecisions.secretIDFile(path: "/s", mode: 0o400, ownerUID: 0).outcome == .pass)
    }

    @Test func theExitCodeIsTheWorstOutcome() {
        #expect(PreflightReport(results: [PreflightResult("a", .pass, "")]).exitCode == 0)
        #expect(
            PreflightReport(results: [PreflightResult("a", .pass, ""), PreflightResult("b", .warn, "")]).exitCode == 1)
        #expect(
            PreflightReport(results: [PreflightResult("a", .fail, ""), PreflightResult("b", .warn, "")]).exitCode == 2)
    }

    @Test("several Vault addresses: all serving passes, some a warning naming them, none a failure")
    func addressListVerdicts() {
        let all = PreflightDecisions.addresses(serving: [0, 1], count: 2, checkedThrough: "http://a:8200")
        #expect(all.outcome == .pass)
        #expect(all.detail == "2 of 2 addresses serve (index 0, 1); the checks below go through index 0, http://a:8200")
        let some = PreflightDecisions.addresses(serving: [2], count: 3, checkedThrough: "http://c:8200")
        #expect(some.outcome == .warn)
        #expect(some.detail.hasPrefix("1 of 3 addresses serve (index 2); the checks below go through index 2"))
        let none = PreflightDecisions.addresses(serving: [], count: 3, checkedThrough: nil)
        #expect(none == PreflightResult("vault.reachable", .fail, "none of the 3 Vault addresses can serve"))
    }
}
