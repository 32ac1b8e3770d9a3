import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

struct ProcessStatisticsTests {
    @Test func theKeptDescriptorsGiveTheSameFiguresAsOpeningProcEachTime() {
        let reader = ProcessStatisticsReader()
        let kept = reader.current()
        let fresh = ProcessStatistics.current()
        #expect(kept.startTimeSeconds != nil && kept.startTimeSeconds == fresh.startTimeSeconds)
        #expect((kept.residentBytes ?? 0) > 0 && kept.cpuMicros != nil)
        // The reader's two descriptors are open while `fresh` counts; its own stream is subtracted.
        #expect(kept.openFDs != nil && fresh.openFDs != nil)
    }

    @Test func aRewoundDirectoryStreamSeesEntriesAddedAfterItWasOpened() throws {
        // A scratch directory stands in for /proc/self/fd (whose count other tests running in
        // parallel change): the reader rewinds one stream opened once, as here.
        var template = Array("/tmp/vkk-stats-XXXXXX".utf8CString)
        let path = try #require(
            template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { _ = rmdir(path) }
        func touch(_ name: String) { close(open("\(path)/\(name)", O_CREAT | O_WRONLY, 0o600)) }
        touch("a")
        touch("b")
        defer { for name in ["a", "b", "c"] { unlink("\(path)/\(name)") } }
        let stream = try #require(opendir(path))
        defer { closedir(stream) }
        #expect(ProcessStatistics.count(stream) == 1)  // two entries, less the stream's own
        touch("c")
        rewinddir(stream)
        #expect(ProcessStatistics.count(stream) == 2)
    }

    @Test func theCPUFigureAdvancesThroughTheKeptStatDescriptor() throws {
        let reader = ProcessStatisticsReader()
        let start = try #require(reader.current().cpuMicros)
        var spin: UInt64 = 0
        let deadline = EventLoop.nowMillis() + 60
        while EventLoop.nowMillis() < deadline { spin &+= 1 }
        #expect(spin > 0)
        #expect(try #require(reader.current().cpuMicros) > start)
    }
}

struct CoreDumpsTests {
    @Test func disablingSetsBothLimitsToZero() {
        #expect(CoreDumps.disable())
        let limits = CoreDumps.limits()
        #expect(limits?.soft == 0 && limits?.hard == 0)
        // Already zero: a second call (setrlimit to the same values) still reports success.
        #expect(CoreDumps.disable())
    }

    @Test func disablingDumpingClearsTheDumpableFlagAndTheCoreLimit() throws {
        try CoreDumps.disableDumping()
        #expect(!CoreDumps.isDumpable)
        let limits = CoreDumps.limits()
        #expect(limits?.soft == 0 && limits?.hard == 0)
    }
}
