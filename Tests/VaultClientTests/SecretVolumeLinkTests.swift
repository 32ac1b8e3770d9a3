import KMSRuntime
import KMSTestSupport
import Testing

@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 14 item 3: the secret-ID file read from a Kubernetes Secret volume, laid out as the
/// kubelet's atomic writer does (`secret-id -> ..data/secret-id`, `..data -> ..<timestamp>`).
struct SecretVolumeLinkTests {
    let directory = TemporaryDirectory()
    let first = "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b"
    let second = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

    /// Writes a new `..<stamp>` directory holding `secret-id` and points `..data` at it with a
    /// rename, as the kubelet swaps a Secret volume's content; returns the volume's secret-ID path.
    @discardableResult
    private func kubeletWrite(_ secret: String, stamp: String, mode: mode_t = 0o400) -> String {
        let volume = "\(directory.path)/volume"
        mkdir(volume, 0o755)
        mkdir("\(volume)/..\(stamp)", 0o755)
        let file = "\(volume)/..\(stamp)/secret-id"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        _ = Array(secret.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        chmod(file, mode)
        symlink("..\(stamp)", "\(volume)/..data_tmp")
        rename("\(volume)/..data_tmp", "\(volume)/..data")
        symlink("..data/secret-id", "\(volume)/secret-id")  // EEXIST after the first write: kept
        return "\(volume)/secret-id"
    }

    private func content(_ path: String) throws -> String {
        try SecretIDFile.load(path: path).withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    private func refusal(_ path: String) -> SecretIDFileError? {
        do {
            _ = try SecretIDFile.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    @Test func aSecretVolumesLinksAreFollowedToTheFileTheyReach() throws {
        let path = kubeletWrite(first, stamp: "2026_12_04_20_00_00.000000001")
        #expect(try content(path) == first)
        #expect(
            ConfinedSymlink.resolve(path)
                == .inside("\(directory.path)/volume/..2026_12_04_20_00_00.000000001/secret-id"))
    }

    @Test func theFileTheLinksReachMustStillBeMode0400Or0600() {
        // A Pod without `defaultMode: 0400` gets 0644: refused with the chmod advice.
        let path = kubeletWrite(first, stamp: "2026_12_04_20_00_00.000000001", mode: 0o644)
        let error = refusal(path)
        #expect(error?.code == .accessibleByOthers)
        #expect(error?.description.contains("(mode 0644); chmod 0400") == true)
    }

    @Test func aLinkLeadingOutOfItsDirectoryIsRefused() {
        let outside = directory.write("outside-secret", first, mode: 0o400)
        mkdir("\(directory.path)/dir", 0o755)
        symlink(outside, "\(directory.path)/dir/secret-id")
        let error = refusal("\(directory.path)/dir/secret-id")
        #expect(error?.code == .symbolicLink)
        #expect(error?.description.contains("leading out of its directory (to \(outside))") == true)
        // Relative links climbing out are the same case.
        symlink("../outside-secret", "\(directory.path)/dir/relative")
        #expect(refusal("\(directory.path)/dir/relative")?.code == .symbolicLink)
    }

    @Test func aDanglingLinkIsAMissingFile() {
        mkdir("\(directory.path)/dir", 0o755)
        symlink("..data/secret-id", "\(directory.path)/dir/secret-id")
        #expect(refusal("\(directory.path)/dir/secret-id")?.code == .missing)
    }

    @Test func theKubeletsDataSwapChangesTheFingerprintAndTheContentRead() throws {
        let path = kubeletWrite(first, stamp: "2026_12_04_20_00_00.000000001")
        let before = try SecretIDFile.loadFingerprinted(path: path).fingerprint
        #expect(SecretIDFingerprint.current(path: path) == before)
        kubeletWrite(second, stamp: "2026_12_04_20_05_00.000000002")
        let seen = SecretIDFingerprint.current(path: path)
        #expect(seen != before)
        let after = try SecretIDFile.loadFingerprinted(path: path)
        #expect(after.fingerprint == seen)
        #expect(after.secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) } == second)
    }

    @Test func theTLSClientKeyFollowsTheSameRule() throws {
        let path = kubeletWrite(first, stamp: "2026_12_04_20_00_00.000000001")
        try PrivateKeyFile.check(path: path)
        let outside = directory.write("outside-key", first, mode: 0o400)
        mkdir("\(directory.path)/dir", 0o755)
        symlink(outside, "\(directory.path)/dir/tls.key")
        #expect(throws: ConfigurationError.self) { try PrivateKeyFile.check(path: "\(directory.path)/dir/tls.key") }
    }
}
