import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// The split broker as `vault-kube-kms broker` runs it, on a real socket with a `FakeVault`: it
/// answers a front that connects and says HELLO, and its shutdown sequence stops taking fronts,
/// removes the socket it bound and stops the loop.
struct BrokerProcessTests {
    static let seqpacket = Int32(SOCK_SEQPACKET.rawValue)

    static func splitProcess(_ directory: TemporaryDirectory, _ logs: LogCapture) throws -> (BrokerProcess, String) {
        let socketPath = directory.path + "/broker.sock"
        let secretPath = directory.write("secret-id", "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b\n")
        let configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role-1234",
            secretIDPath: secretPath)
        let options = BrokerProcess.SplitOptions(
            configuration: configuration, policy: .init(uid: getuid(), gid: nil)
        ) { () throws(ConfigurationError) in
            let fd = try SocketListener.listen(at: .path(socketPath), options: .init(mode: 0o600, type: seqpacket))
            return .init(fd: fd, boundPath: socketPath, name: "unix://" + socketPath)
        }
        var vault: FakeVault?
        let process = try BrokerProcess.split(
            options, logger: logs.logger,
            makeTransport: { loop in
                let fake = FakeVault(loop: loop)
                vault = fake
                return fake
            }, processWide: false)
        #expect(vault != nil)
        return (process, socketPath)
    }

    @Test func aSplitBrokerAnswersAFrontsHelloAndItsShutdownRemovesTheSocket() throws {
        let directory = TemporaryDirectory()
        let logs = LogCapture()
        let (process, socketPath) = try Self.splitProcess(directory, logs)
        #expect(access(socketPath, F_OK) == 0)
        #expect(logs.events(named: "broker.started").count == 1)

        let front = try UnixSocket.connect(to: .path(socketPath), type: Self.seqpacket)
        defer { close(front) }
        let hello = BrokerFrame(
            type: .helloRequest, requestID: 1, payload: HelloRequest(frontVersion: "test-front").payload())
        #expect(UnixSocket.sendPacket(front, hello.encoded()))
        #expect(runLoop(process.loop) { !logs.events(named: "front.ready").isEmpty })

        process.shutdown(signal: SIGTERM)
        process.shutdown(signal: SIGTERM)  // once only
        // The sequence ends by stopping the loop itself, which also ends runLoop.
        runLoop(process.loop, timeoutMillis: 5000) { process.shutDown }
        #expect(process.shutDown)
        #expect(logs.events(named: "shutdown.begin").count == 1)
        #expect(logs.events(named: "shutdown.done").count == 1)
        #expect(access(socketPath, F_OK) != 0)
    }

    @Test func theSocketIsOpenedOnlyAfterTheSecretIDFileWasRead() throws {
        let directory = TemporaryDirectory()
        let logs = LogCapture()
        let socketPath = directory.path + "/broker.sock"
        var opened = false
        let configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role-1234",
            secretIDPath: directory.path + "/missing-secret-id")
        let options = BrokerProcess.SplitOptions(configuration: configuration, policy: .init(uid: getuid(), gid: nil)) {
            () throws(ConfigurationError) in
            opened = true
            return .init(fd: -1, boundPath: socketPath, name: "unused")
        }
        #expect(throws: ConfigurationError.self) {
            _ = try BrokerProcess.split(
                options, logger: logs.logger, makeTransport: { FakeVault(loop: $0) }, processWide: false)
        }
        #expect(!opened)
        #expect(access(socketPath, F_OK) != 0)
    }
}
