import KMSCore
import KMSRuntime
import KMSTestSupport
import Logging

@testable import Broker
@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// A `BrokerService` on its own event loop with a `FakeVault`, attached to one end of a real
/// `UnixSocket.seqpacketPair()`; the test plays the front on the other end.
final class BrokerHarness {
    let loop: EventLoop
    let vault: FakeVault
    let logs = LogCapture()
    let directory = TemporaryDirectory()
    let service: BrokerService
    let frontFD: Int32
    private(set) var helloCount = 0
    private(set) var closeCount = 0
    private(set) var received: [BrokerFrame] = []
    private(set) var brokerClosed = false
    static let secretID = "4f7c1a2e-9b3d-4e5f-8a6b-7c8d9e0f1a2b"

    init(
        keyCheckIntervalMillis: Int = 30_000, acceptForeignKeyIDs: Bool = false,
        configure: (FakeVault) -> Void = { _ in }
    ) throws {
        loop = try EventLoop()
        vault = FakeVault(loop: loop)
        configure(vault)
        let secretPath = directory.write("secret-id", Self.secretID + "\n")
        let configuration = BrokerConfiguration(
            vaultAddress: "http://127.0.0.1:8200", vaultKeyPath: "transit/keys/kek", roleID: "role-1234",
            secretIDPath: secretPath, keyCheckIntervalMillis: keyCheckIntervalMillis)
        var configured = configuration
        configured.acceptForeignKeyIDs = acceptForeignKeyIDs
        service = try BrokerService(configuration: configured, loop: loop, logger: logs.logger, transport: vault)
        let (brokerEnd, frontEnd) = try UnixSocket.seqpacketPair()
        frontFD = frontEnd
        try UnixSocket.setNonBlocking(frontFD)
        service.attachFront(
            fd: brokerEnd, onHello: { [unowned self] in helloCount += 1 },
            onClose: { [unowned self] in closeCount += 1 })
    }

    deinit { close(frontFD) }

    /// Starts the service and waits until it reports `ok` (logged in, key read).
    func startAndWaitHealthy() -> Bool {
        service.start()
        return runLoop(loop) { self.service.healthReason == "ok" }
    }

    /// Sends a well-formed frame.
    func send(_ type: BrokerMessageType, id: UInt32, payload: [UInt8] = []) {
        sendRaw(BrokerFrame(type: type, requestID: id, payload: payload).encoded())
    }

    func sendRaw(_ packet: [UInt8]) {
        let sent = packet.withUnsafeBytes { Glibc.send(frontFD, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        precondition(sent == packet.count, "send to broker failed: \(SystemError("send"))")
    }

    /// Sends HELLO and waits for its answer.
    func hello() -> Bool {
        send(.helloRequest, id: 1, payload: HelloRequest(frontVersion: "test-front").payload())
        return waitForAnswer(id: 1) != nil
    }

    /// Reads whatever the broker sent.
    func drain() {
        while true {
            switch UnixSocket.receivePacket(frontFD, limit: Limits.maxBrokerPacketBytes) {
            case .packet(let packet):
                if let frame = try? BrokerFrame.decode(packet) { received.append(frame) }
            case .closed:
                brokerClosed = true
                return
            case .wouldBlock, .oversized:
                return
            }
        }
    }

    func waitForAnswer(id: UInt32, timeoutMillis: Int64 = 3000) -> BrokerFrame? {
        runLoop(loop, timeoutMillis: timeoutMillis) {
            self.drain()
            return self.received.contains { $0.requestID == id } || self.brokerClosed
        }
        return received.first { $0.requestID == id }
    }

    /// Waits until the broker closes the connection; true if it did.
    func waitForClose(timeoutMillis: Int64 = 3000) -> Bool {
        runLoop(loop, timeoutMillis: timeoutMillis) {
            self.drain()
            return self.brokerClosed
        }
    }

    var rejectLines: [LogCapture.Event] { logs.events(named: "broker.reject") }

    /// A key_id the broker derives for `version` of the fake key.
    func keyID(version: UInt32) -> String? { service.keyProbe.cache.keyID(forVersion: version)?.description }

    static func header(
        magic: (UInt8, UInt8) = BrokerFrame.magic, version: UInt8 = BrokerFrame.protocolVersion, type: UInt8,
        requestID: UInt32 = 7, length: UInt32
    ) -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(magic.0)
        writer.u8(magic.1)
        writer.u8(version)
        writer.u8(type)
        writer.u32(requestID)
        writer.u32(length)
        writer.u32(0)
        return writer.bytes
    }
}
