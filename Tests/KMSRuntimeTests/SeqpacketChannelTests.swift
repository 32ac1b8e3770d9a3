import KMSRuntime
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The one send queue of both ends of the broker protocol: at once while the socket has room,
/// in order once it is full, bounded, and failures reported.
struct SeqpacketChannelTests {
    @Test func packetsWaitInOrderWhenTheSocketIsFullAndGoOutOnFlush() throws {
        let (mine, peer) = try UnixSocket.seqpacketPair()
        defer {
            close(mine)
            close(peer)
        }
        try UnixSocket.setNonBlocking(mine)
        try UnixSocket.setNonBlocking(peer)
        var channel = SeqpacketChannel(fd: mine, limit: 2)
        var sent = 0
        var outcome = channel.send([UInt8](repeating: 0, count: 32_768))
        while case .sent = outcome, sent < 10_000 {
            sent += 1
            outcome = channel.send([UInt8](repeating: UInt8(truncatingIfNeeded: sent), count: 32_768))
        }
        guard case .queued = outcome else { Issue.record("expected the full socket to queue, got \(outcome)"); return }
        guard case .queued = channel.send([1]) else { Issue.record("the second packet queues too"); return }
        guard case .full = channel.send([2]) else { Issue.record("a third packet is over the limit"); return }
        #expect(channel.count == 2)

        // The peer reads everything; the waiting packets then go out, in order, and nothing waits.
        var received: [[UInt8]] = []
        func drainPeer() {
            while case .packet(let packet) = UnixSocket.receivePacket(peer, limit: 65_536) { received.append(packet) }
        }
        drainPeer()
        #expect(channel.flush() == nil)
        #expect(channel.isEmpty)
        drainPeer()
        #expect(received.count == sent + 2)
        #expect(received.suffix(2).map(\.count) == [32_768, 1])
    }

    @Test func aClosedPeerIsAFailureNotAQueuedPacket() throws {
        let (mine, peer) = try UnixSocket.seqpacketPair()
        defer { close(mine) }
        close(peer)
        var channel = SeqpacketChannel(fd: mine)
        guard case .failed(let failure) = channel.send([1, 2, 3]) else {
            Issue.record("a send to a closed peer must fail")
            return
        }
        #expect("\(failure)".contains("send"))
        #expect(channel.isEmpty)
    }
}
