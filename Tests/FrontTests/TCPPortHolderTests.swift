import Testing

@testable import Front

#if canImport(Glibc)
    import Glibc
#endif

/// The uid named in `<port>.bind_failed` as the holder of a port the front could not bind.
struct TCPPortHolderTests {
    @Test func parsesListeningSocketsOnThePortOnly() {
        let table = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0
               1: 0100007F:1F91 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000  2000        0 4243 1 0
               2: 00000000:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000  3000        0 4244 1 0
               3: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 65534 0 4245 1 0
            """
        #expect(TCPPortHolder.listeningUIDs(port: 0x1F91, table: table) == [1000, 65534])
        #expect(TCPPortHolder.listeningUIDs(port: 0x1F92, table: table) == [3000])
        #expect(TCPPortHolder.listeningUIDs(port: 1, table: table).isEmpty)
        #expect(TCPPortHolder.listeningUIDs(port: 0x1F91, table: "garbage\n0: x y 0A").isEmpty)
    }

    @Test func findsThisProcessAsTheHolderOfAPortItListensOn() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        #expect(bound == 0)
        #expect(listen(fd, 1) == 0)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        #expect(TCPPortHolder.listeningUIDs(port: port).contains(getuid()))
    }
}
