import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

struct SystemdProtocolTests {
    @Test func statusIsSentOnlyWhenTheReasonChanges() {
        var sent: [String] = []
        let status = SystemdStatus { sent.append($0) }
        #expect(status.report("not logged in yet"))
        #expect(!status.report("not logged in yet"))
        #expect(status.report("ok"))
        #expect(status.report("line\nbreak"))
        #expect(sent == ["STATUS=not logged in yet", "STATUS=ok", "STATUS=line break"])
    }

    @Test func theWatchdogIsPettedAtHalfTheIntervalFromTheLoop() throws {
        #expect(SystemdWatchdog.petInterval(watchdogMicros: 30_000_000) == 15_000)
        #expect(SystemdWatchdog.petInterval(watchdogMicros: 500) == 1)
        let loop = try EventLoop()
        var sent: [String] = []
        let watchdog = SystemdWatchdog(loop: loop, watchdogMicros: 20_000) { sent.append($0) }
        watchdog.pet()
        #expect(sent == ["WATCHDOG=1"])
        loop.schedule(afterMillis: 45) {
            watchdog.stop()
            loop.stop()
        }
        loop.run()
        // Sent at 0, 10, 20, 30, 40 ms: a count, not a clock reading, and never after stop().
        #expect(sent.count >= 2 && sent.allSatisfy { $0 == "WATCHDOG=1" })
        let count = sent.count
        loop.schedule(afterMillis: 30) { loop.stop() }
        loop.run()
        #expect(sent.count == count)
    }

    @Test func activationPicksAListeningSocketOfTheRequestedType() throws {
        let stream = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let seqpacket = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
        let unbound = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(stream); close(seqpacket); close(unbound) }
        let dir = String(cString: mkdtemp(strdup("/tmp/vkk-act-XXXXXX"))!)
        for (fd, name) in [(stream, "kms"), (seqpacket, "broker")] {
            var (addr, length) = UnixSocket.makeAddress(.path(dir + "/" + name))
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            #expect(bound == 0)
            #expect(listen(fd, 1) == 0)
        }
        let sockets = [
            SocketActivation.Socket(fd: unbound, name: "kms"), SocketActivation.Socket(fd: seqpacket, name: "broker"),
            SocketActivation.Socket(fd: stream, name: "other"),
        ]
        #expect(SocketActivation.listeningSocket(of: Int32(SOCK_STREAM.rawValue), in: sockets)?.fd == stream)
        #expect(
            SocketActivation.listeningSocket(of: Int32(SOCK_SEQPACKET.rawValue), in: sockets, preferredName: "broker")?
                .fd == seqpacket)
        #expect(SocketActivation.listeningSocket(of: Int32(SOCK_DGRAM.rawValue), in: sockets) == nil)
        #expect(!SocketActivation.isListeningUnixSocket(unbound, type: Int32(SOCK_STREAM.rawValue)))
        unlink(dir + "/kms")
        unlink(dir + "/broker")
        rmdir(dir)
    }

    @Test func withoutListenFDsNothingIsInherited() {
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_PID")
        #expect(SocketActivation.inheritedSockets().isEmpty)
    }
}
