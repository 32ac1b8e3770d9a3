import Logging
import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// The one accept loop (KMSRuntime.Acceptor) behind the front's KMS socket, its health port and
/// the split broker's socket.
struct AcceptorTests {
    private static func listener(_ path: String) throws -> Int32 {
        try SocketListener.listen(at: .path(path), options: .init(mode: 0o600))
    }

    private static func connectClient(_ path: String) throws -> Int32 {
        try UnixSocket.connect(to: .path(path))
    }

    @Test func everyPendingConnectionIsAcceptedCloseOnExecAndNonBlocking() throws {
        let path = "/tmp/kms-acceptor-\(getpid())-a.sock"
        let fd = try Self.listener(path)
        defer { close(fd); unlink(path) }
        let loop = try EventLoop()
        var accepted: [Int32] = []
        let acceptor = Acceptor(
            fd: fd, loop: loop, logger: Logger(label: "test"), pausedEvent: "test.accept_paused",
            failedEvent: "test.accept_failed"
        ) { accepted.append($0) }
        try acceptor.start()
        let clients = try (0..<3).map { _ in try Self.connectClient(path) }
        defer { clients.forEach { close($0) } }
        loop.schedule(afterMillis: 100) { loop.stop() }
        loop.run()
        #expect(accepted.count == 3)
        for connection in accepted {
            #expect(fcntl(connection, F_GETFD) & FD_CLOEXEC != 0)
            #expect(fcntl(connection, F_GETFL) & O_NONBLOCK != 0)
            close(connection)
        }
        acceptor.stop()
        #expect(!loop.isRegistered(fd: fd))
    }

    @Test func descriptorExhaustionPausesPollingThenResumes() throws {
        let path = "/tmp/kms-acceptor-\(getpid())-b.sock"
        let fd = try Self.listener(path)
        defer { close(fd); unlink(path) }
        let loop = try EventLoop()
        var accepted: [Int32] = []
        var attempts = 0
        var registeredDuringPause: Bool?
        let acceptor = Acceptor(
            fd: fd, loop: loop, logger: Logger(label: "test"), pausedEvent: "test.accept_paused",
            failedEvent: "test.accept_failed", backoffMillis: 50
        ) { accepted.append($0) }
        // The first accept fails as if the process had no descriptor left; later ones are real.
        acceptor.acceptCall = { listening in
            attempts += 1
            if attempts == 1 {
                errno = EMFILE
                return -1
            }
            return accept(listening, nil, nil)
        }
        try acceptor.start()
        let client = try Self.connectClient(path)
        defer { close(client) }
        loop.schedule(afterMillis: 20) { registeredDuringPause = loop.isRegistered(fd: fd) }
        loop.schedule(afterMillis: 200) { loop.stop() }
        loop.run()
        #expect(acceptor.pauses == 1)
        #expect(registeredDuringPause == false, "a level-triggered listener must not be polled while paused")
        #expect(accepted.count == 1, "the pending connection is accepted once polling resumes")
        accepted.forEach { close($0) }
        acceptor.stop()
    }

    @Test func stopDuringAPauseCancelsTheResume() throws {
        let path = "/tmp/kms-acceptor-\(getpid())-c.sock"
        let fd = try Self.listener(path)
        defer { close(fd); unlink(path) }
        let loop = try EventLoop()
        var accepted = 0
        let acceptor = Acceptor(
            fd: fd, loop: loop, logger: Logger(label: "test"), pausedEvent: "test.accept_paused",
            failedEvent: "test.accept_failed", backoffMillis: 30
        ) { connection in
            accepted += 1
            close(connection)
        }
        acceptor.acceptCall = { _ in
            errno = ENFILE
            return -1
        }
        try acceptor.start()
        let client = try Self.connectClient(path)
        defer { close(client) }
        loop.schedule(afterMillis: 10) { acceptor.stop() }
        loop.schedule(afterMillis: 120) { loop.stop() }
        loop.run()
        #expect(acceptor.pauses == 1)
        #expect(!acceptor.isAccepting)
        #expect(!loop.isRegistered(fd: fd), "a stopped acceptor is never registered again")
        #expect(accepted == 0)
    }
}
