#if canImport(Glibc)
    import Glibc
#endif

/// The send side of a non-blocking SOCK_SEQPACKET connection, for both ends of the broker
/// protocol: a packet goes out at once when the socket has room and nothing waits, else it waits
/// in order (at most `limit` packets) until `flush()` on the next writable event. The owner
/// arms and disarms writable interest (`isEmpty` says when) and decides what a failure means.
public struct SeqpacketChannel {
    public enum Failure: Error, CustomStringConvertible {
        /// send() took fewer bytes than the packet (never for SOCK_SEQPACKET; a wrong socket).
        case shortSend
        case system(SystemError)

        public var description: String {
            switch self {
            case .shortSend: return "short send"
            case .system(let error): return "\(error)"
            }
        }
    }

    public enum Outcome {
        case sent
        /// Waiting for the socket to become writable (the owner arms writable interest).
        case queued
        /// `limit` packets already wait: the peer is not reading.
        case full
        case failed(Failure)
    }

    public private(set) var fd: Int32
    public let limit: Int
    private var queue: [[UInt8]] = []
    private var head = 0

    public init(fd: Int32, limit: Int = .max) {
        self.fd = fd
        self.limit = limit
    }

    /// Packets waiting.
    public var count: Int { queue.count - head }
    public var isEmpty: Bool { head == queue.count }

    public mutating func send(_ packet: [UInt8]) -> Outcome {
        if isEmpty {
            switch Self.sendNow(fd, packet) {
            case .success(true): return .sent
            case .success(false): break
            case .failure(let failure): return .failed(failure)
            }
        }
        guard count < limit else { return .full }
        queue.append(packet)
        return .queued
    }

    /// Sends what waits, in order; nil when the socket filled up again or everything went out
    /// (then `isEmpty`).
    public mutating func flush() -> Failure? {
        while head < queue.count {
            switch Self.sendNow(fd, queue[head]) {
            case .success(true): head += 1
            case .success(false): return nil
            case .failure(let failure): return failure
            }
        }
        queue.removeAll()
        head = 0
        return nil
    }

    /// Drops what waits and uses `newFD` from now on (a reconnect, a close).
    public mutating func reset(fd newFD: Int32) {
        fd = newFD
        queue.removeAll()
        head = 0
    }

    /// true: sent; false: the socket would block.
    private static func sendNow(_ fd: Int32, _ packet: [UInt8]) -> Result<Bool, Failure> {
        while true {
            let sent = packet.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent == packet.count { return .success(true) }
            if sent >= 0 { return .failure(.shortSend) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .success(false) }
            return .failure(.system(SystemError("send")))
        }
    }
}
