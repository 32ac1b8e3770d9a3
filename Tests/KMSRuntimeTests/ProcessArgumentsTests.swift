import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

struct ProcessArgumentsTests {
    /// /proc/self/cmdline split at its NUL bytes: what the kernel holds as this process' argv.
    private func kernelCommandLine() -> [String]? {
        guard let file = fopen("/proc/self/cmdline", "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        if bytes.last == 0 { bytes.removeLast() }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func theInitArrayCaptureHoldsTheKernelsArgvWithoutReadingProc() throws {
        let captured = try #require(ProcessArguments.captured(), "kms_args.c's .init_array function did not run")
        let kernel = try #require(kernelCommandLine())
        #expect(captured == kernel)
        #expect(!captured.isEmpty)
    }

    @Test func currentPrefersTheCapturedArgv() throws {
        #expect(ProcessArguments.current() == ProcessArguments.captured())
    }
}
