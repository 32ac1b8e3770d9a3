import KMSRuntime
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The one check of inherited sockets (the front's --broker-fd/--listen-fd, socket activation).
struct SocketCheckTests {
    static let seqpacket = Int32(SOCK_SEQPACKET.rawValue)
    static let stream = Int32(SOCK_STREAM.rawValue)

    @Test func aConnectedSeqpacketPairIsWhatBrokerFDWantsAndNotAListener() throws {
        let (one, two) = try UnixSocket.seqpacketPair()
        defer {
            close(one)
            close(two)
        }
        #expect(SocketCheck.problem(one, type: Self.seqpacket, listening: false) == nil)
        #expect(SocketCheck.problem(one, type: Self.seqpacket, listening: true) == .wrongState(listening: false))
        #expect(SocketCheck.problem(one, type: Self.stream, listening: false) == .wrongType(Self.seqpacket))
        #expect(!SocketActivation.isListeningUnixSocket(one, type: Self.seqpacket))
    }

    @Test func aListeningUnixSocketPassesAndAnInetOneOrAPipeDoNot() throws {
        let listener = try SocketListener.listen(
            at: .abstract("kms-socket-check-\(getpid())"), options: .init(type: Self.stream))
        let inet = socket(AF_INET, Self.stream, 0)
        var pipeFDs: [Int32] = [0, 0]
        #expect(pipe(&pipeFDs) == 0)
        defer { for fd in [listener, inet] + pipeFDs { close(fd) } }
        #expect(SocketCheck.problem(listener, type: Self.stream, listening: true) == nil)
        #expect(SocketActivation.isListeningUnixSocket(listener, type: Self.stream))
        #expect(SocketCheck.problem(inet, type: Self.stream, listening: false) == .notUnix)
        #expect(SocketCheck.problem(pipeFDs[0], type: Self.stream, listening: false) == .notASocket(errno: ENOTSOCK))
    }
}
