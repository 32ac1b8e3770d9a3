import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

struct SocketListenerTests {
    private func temporaryDirectory() -> String {
        var template = Array("/tmp/vkk-rt-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        return path
    }

    private func mode(_ path: String) -> mode_t {
        var info = stat()
        lstat(path, &info)
        return info.st_mode
    }

    @Test func createsTheSocketWithExactlyTheRequestedMode() throws {
        let dir = temporaryDirectory()
        let path = dir + "/kms.sock"
        let fd = try SocketListener.listen(at: .path(path), options: .init(mode: 0o600))
        defer { close(fd); unlink(path) }
        #expect(mode(path) & S_IFMT == S_IFSOCK)
        #expect(mode(path) & 0o777 == 0o600)
    }

    @Test func aModeGivingOthersAccessIsRefused() throws {
        #expect(throws: ConfigurationError.self) {
            try SocketListener.listen(at: .path(temporaryDirectory() + "/s"), options: .init(mode: 0o666))
        }
        #expect(throws: ConfigurationError.self) { try SocketOptions.parseMode("0666") }
        #expect(throws: ConfigurationError.self) { try SocketOptions.parseMode("rw") }
        #expect(try SocketOptions.parseMode("0660") == 0o660)
    }

    @Test func aDeadSocketFileIsReplaced() throws {
        let dir = temporaryDirectory()
        let path = dir + "/kms.sock"
        let stale = try SocketListener.listen(at: .path(path), options: .init())
        close(stale)  // the file stays behind, nobody listens
        #expect(mode(path) & S_IFMT == S_IFSOCK)
        let fd = try SocketListener.listen(at: .path(path), options: .init())
        close(fd)
        unlink(path)
    }

    @Test func aLiveSocketStopsStartup() throws {
        let path = temporaryDirectory() + "/kms.sock"
        let live = try SocketListener.listen(at: .path(path), options: .init())
        defer { close(live); unlink(path) }
        #expect {
            try SocketListener.listen(at: .path(path), options: .init())
        } throws: { error in
            "\(error)".contains("live socket")
        }
    }

    @Test func aRegularFileIsNeverRemoved() throws {
        let path = temporaryDirectory() + "/kms.sock"
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        #expect {
            try SocketListener.listen(at: .path(path), options: .init())
        } throws: { error in
            "\(error)".contains("not a socket")
        }
        #expect(access(path, F_OK) == 0)
        unlink(path)
    }

    @Test func listenAddressParsesPathAndAbstractForms() throws {
        #expect(try ListenAddress(parsing: "unix:///run/kms.sock") == .path("/run/kms.sock"))
        #expect(try ListenAddress(parsing: "unix:///@kms") == .abstract("kms"))
        // A bare absolute path is a socket path (HashiCorp's examples), never an abstract name.
        #expect(try ListenAddress(parsing: "/run/kms.sock") == .path("/run/kms.sock"))
        #expect(try ListenAddress(parsing: "/@kms") == .path("/@kms"))
        for bad in [
            "run/kms.sock", "unix://run/kms.sock", "tcp://x", "unix:///@", "/run/",
            "/" + String(repeating: "a", count: 200),
            "unix:///" + String(repeating: "a", count: 200),
        ] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try ListenAddress(parsing: bad) }
        }
    }

    @Test func seqpacketPairKeepsBoundariesAndReportsOversizedPackets() throws {
        let (a, b) = try UnixSocket.seqpacketPair()
        defer { close(a); close(b) }
        #expect(UnixSocket.sendPacket(a, [1, 2, 3]))
        #expect(UnixSocket.sendPacket(a, [4]))
        #expect(UnixSocket.receivePacket(b, limit: 16) == .packet([1, 2, 3]))
        #expect(UnixSocket.receivePacket(b, limit: 16) == .packet([4]))
        #expect(UnixSocket.sendPacket(a, [UInt8](repeating: 9, count: 100)))
        #expect(UnixSocket.receivePacket(b, limit: 16) == .oversized(100))
        close(a)
        #expect(UnixSocket.receivePacket(b, limit: 16) == .closed)
    }
}
