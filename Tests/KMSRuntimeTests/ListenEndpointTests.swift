import KMSRuntime
import Logging
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Without socket activation the one listener-opener binds the given address (with the type
/// asked for) and says which path to unlink; when it cannot, the caller's reason stands.
struct ListenEndpointTests {
    static let seqpacket = Int32(SOCK_SEQPACKET.rawValue)

    @Test func withoutActivationTheAddressIsBoundWithTheRequestedType() throws {
        var template = Array("/tmp/listen-endpoint-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil)
        let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let path = directory + "/broker.sock"
        defer {
            unlink(path)
            rmdir(directory)
        }
        let opened = try ListenEndpoint.open(
            type: Self.seqpacket, activationName: "broker", logger: Logger(label: "test")
        ) { () throws(ConfigurationError) in (.path(path), SocketListener.Options(mode: 0o600)) }
        defer { close(opened.fd) }
        #expect(opened.boundPath == path)
        #expect(opened.name == "unix://" + path)
        #expect(SocketCheck.problem(opened.fd, type: Self.seqpacket, listening: true) == nil)
    }

    @Test func whenNothingWasPassedAndNothingMayBeBoundTheCallersReasonIsThrown() {
        #expect {
            _ = try ListenEndpoint.open(type: Self.seqpacket, activationName: "kms", logger: Logger(label: "test")) {
                () throws(ConfigurationError) in throw ConfigurationError("no socket was passed")
            }
        } throws: { error in
            (error as? ConfigurationError)?.description == "no socket was passed"
        }
    }
}
