import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

struct SecretIDFileTests {
    let directory = TemporaryDirectory()
    let secret = "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b"

    private func refusal(_ path: String) -> SecretIDFileError? {
        do {
            _ = try SecretIDFile.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    private func content(_ path: String) throws -> String {
        try SecretIDFile.load(path: path).withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    @Test func mode0400IsAcceptedAndOneTrailingNewlineRemoved() throws {
        let path = directory.write("id", secret + "\n", mode: 0o400)
        #expect(try content(path) == secret)
    }

    @Test func mode0600IsAccepted() throws {
        let path = directory.write("id", secret, mode: 0o600)
        #expect(try content(path) == secret)
    }

    @Test func aMissingFileIsRefusedByName() {
        let error = refusal("\(directory.path)/absent")
        #expect(error?.code == .missing)
        #expect(error?.description == "secret-ID file \(directory.path)/absent does not exist")
    }

    @Test func aDirectoryIsRefused() {
        mkdir("\(directory.path)/dir", 0o700)
        let error = refusal("\(directory.path)/dir")
        #expect(error?.code == .notRegularFile)
        #expect(error?.description.contains("is a directory") == true)
    }

    @Test func aSymlinkOutOfItsDirectoryIsRefusedEvenToAGoodFile() {
        let target = directory.write("target", secret, mode: 0o400)
        mkdir("\(directory.path)/sub", 0o700)
        symlink(target, "\(directory.path)/sub/link")
        let error = refusal("\(directory.path)/sub/link")
        #expect(error?.code == .symbolicLink)
        #expect(error?.description.contains("symbolic link leading out of its directory") == true)
    }

    @Test func anEmptyFileIsRefused() {
        #expect(refusal(directory.write("empty", "", mode: 0o400))?.code == .empty)
    }

    @Test func aFileWithOnlyANewlineIsRefusedAsEmpty() {
        #expect(refusal(directory.write("newline", "\n", mode: 0o400))?.code == .empty)
    }

    @Test func mode0644IsRefusedWithTheChmodAdvice() {
        let path = directory.write("id", secret, mode: 0o644)
        let error = refusal(path)
        #expect(error?.code == .accessibleByOthers)
        #expect(error?.description == "secret-ID file \(path) is accessible by group or others (mode 0644); chmod 0400")
    }

    @Test func mode0440IsRefusedBecauseTheGroupCanRead() {
        let path = directory.write("id", secret, mode: 0o440)
        #expect(refusal(path)?.code == .accessibleByOthers)
        #expect(refusal(path)?.description.contains("mode 0440") == true)
    }

    @Test func aFileOwnedBySomeoneElseIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown")
        let path = directory.write("id", secret, mode: 0o400)
        chown(path, 65534, 65534)
        let error = refusal(path)
        #expect(error?.code == .wrongOwner)
        #expect(error?.description.contains("owned by uid 65534") == true)
    }

    @Test func anOversizedFileIsRefused() {
        let path = directory.write("big", String(repeating: "a", count: SecretIDFile.maxBytes + 1), mode: 0o400)
        let error = refusal(path)
        #expect(error?.code == .tooLarge)
        #expect(error?.description.contains("larger than 4096 bytes") == true)
    }

    @Test func aFileOfExactlyTheLimitIsAccepted() throws {
        let path = directory.write("max", String(repeating: "a", count: SecretIDFile.maxBytes), mode: 0o400)
        #expect(try content(path).count == SecretIDFile.maxBytes)
    }

    @Test func innerWhitespaceOrCRLFIsRefused() {
        #expect(refusal(directory.write("crlf", secret + "\r\n", mode: 0o400))?.code == .badContent)
        #expect(refusal(directory.write("two", secret + "\n\n", mode: 0o400))?.code == .badContent)
    }

    @Test func noErrorMessageContainsTheSecret() {
        let path = directory.write("id", secret + " \n", mode: 0o644)
        #expect(refusal(path)?.description.contains(secret) == false)
        chmod(path, 0o400)
        #expect(refusal(path)?.description.contains(secret) == false)
    }

    @Test func theBrokerRefusesToStartWithABadFile() throws {
        let loop = try EventLoop()
        let path = directory.write("id", secret, mode: 0o644)
        let configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:1", vaultKeyPath: "transit/keys/kek", roleID: "r", secretIDPath: path)
        #expect(throws: ConfigurationError.self) {
            try BrokerService(configuration: configuration, loop: loop, logger: LogCapture().logger)
        }
    }
}
