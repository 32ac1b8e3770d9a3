import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

struct EventLoopTests {
    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() throws {
        let loop = try EventLoop()
        var fired: [Int] = []
        loop.schedule(afterMillis: 30) { fired.append(3) }
        loop.schedule(afterMillis: 10) { fired.append(1) }
        let cancelled = loop.schedule(afterMillis: 20) { fired.append(2) }
        loop.cancel(cancelled)
        loop.schedule(afterMillis: 50) { loop.stop() }
        loop.run()
        #expect(fired == [1, 3])
    }

    @Test func readableFdInvokesItsHandler() throws {
        let loop = try EventLoop()
        let (a, b) = try UnixSocket.seqpacketPair()
        defer { close(a); close(b) }
        var received: [UInt8] = []
        try loop.register(fd: b, events: .readable) { _ in
            if case .packet(let bytes) = UnixSocket.receivePacket(b, limit: 64) { received = bytes }
            loop.stop()
        }
        loop.schedule(afterMillis: 5) { _ = UnixSocket.sendPacket(a, [7, 7]) }
        loop.schedule(afterMillis: 2000) { loop.stop() }
        loop.run()
        #expect(received == [7, 7])
    }

    @Test func timerHeapPopsInOrder() {
        var heap = TimerHeap()
        for (index, deadline) in [50, 10, 40, 10, 30, 20].enumerated() {
            heap.push(deadline: Int64(deadline), id: UInt64(index))
        }
        var order: [Int64] = []
        while let next = heap.pop() { order.append(next.deadline) }
        #expect(order == [10, 10, 20, 30, 40, 50])
    }
}

struct RepeatingTimerTests {
    @Test func runsEveryIntervalUntilStoppedAndStartTwiceArmsOnce() throws {
        let loop = try EventLoop()
        var runs = 0
        let timer = RepeatingTimer(loop: loop, intervalMillis: 10) { runs += 1 }
        timer.start()
        timer.start()  // must not start a second chain
        var runsAtStop = -1
        loop.schedule(afterMillis: 55) {
            timer.stop()
            runsAtStop = runs
            loop.schedule(afterMillis: 40) { loop.stop() }
        }
        loop.run()
        // Each run re-arms 10 ms after it fired, so one chain runs at most 5 times in 55 ms (the
        // first deadline precedes the stop, so at least once); nothing runs after stop().
        #expect((1...5).contains(runsAtStop))
        #expect(runs == runsAtStop)
        #expect(timer.isStopped)
    }
}
