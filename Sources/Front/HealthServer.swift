import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// One answer of the health or metrics port. Always `Connection: close`: one request per
/// connection keeps the server trivially bounded.
public struct HTTPResponse: Equatable, Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }

    /// The bytes on the wire.
    public func encoded() -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
        head += "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + body
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 500: "Internal Server Error"
        case 408: "Request Timeout"
        case 414: "URI Too Long"
        case 431: "Request Header Fields Too Large"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

/// A small HTTP/1.1 server on the front's event loop (loopback unless configured) for `/livez`, `/readyz`,
/// `/healthz` and `/metrics`. Requests are parsed by `HTTPRequestParser`; the handler answers
/// now or later (a scrape waits briefly for the broker's figures). Bounded: at most
/// `maxConnections` at once; a request head must arrive within `headTimeoutMillis` and be
/// answered within `requestTimeoutMillis`. Any local user can connect, so idle connections cannot
/// lock out the kubelet: when all slots are taken, the oldest connection that has not sent a
/// complete request is closed to make room (a connection waiting for its answer is never evicted).
final class HealthServer {
    /// Scrapers and probes open one connection at a time; a few spare for operators.
    static let maxConnections = 16
    /// A request head must arrive within this (kubelet and Prometheus send theirs at once).
    static let headTimeoutMillis: Int64 = 2_000
    /// ... and be answered within this (kubelet's default probe timeout is 1 s, Prometheus'
    /// scrape timeout 10 s).
    static let requestTimeoutMillis: Int64 = 5_000

    typealias Handler = (HTTPRequestParser.Request, @escaping (HTTPResponse) -> Void) -> Void

    private final class Client {
        let fd: Int32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var answered = false
        var timer: EventLoop.TimerID?
        let acceptedMillis = EventLoop.nowMillis()
        /// Accept order: the oldest idle connection is the one evicted.
        let serial: UInt64
        init(fd: Int32, serial: UInt64) {
            self.fd = fd
            self.serial = serial
        }
    }

    let port: UInt16
    private var acceptor: Acceptor!
    private unowned let loop: EventLoop
    private let logger: Logger
    private let handler: Handler
    private var clients: [Int32: Client] = [:]
    private var nextSerial: UInt64 = 0
    /// Connections closed to make room (for tests and the debug log).
    private(set) var evictions: UInt64 = 0

    /// Binds `address:port` (127.0.0.1 unless `--health-address` says otherwise; metrics always
    /// on loopback) and starts accepting.
    init(
        address: HealthBindAddress = .loopback, port: UInt16, loop: EventLoop, logger: Logger,
        handler: @escaping Handler
    ) throws(SystemError) {
        let family: Int32
        switch address {
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        }
        let fd = socket(
            family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound: Int32
        switch address {
        case .ipv4(let host):
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            v4.sin_addr.s_addr = host.bigEndian
            bound = withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .ipv6(let bytes):
            // `::` means IPv6 only here; 0.0.0.0 is asked for separately.
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            var v6 = sockaddr_in6()
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &v6.sin6_addr) { $0.copyBytes(from: bytes) }
            bound = withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let error = SystemError("bind \(address.withPort(port))")
            close(fd)
            throw error
        }
        self.port = port
        self.loop = loop
        self.logger = logger
        self.handler = handler
        acceptor = Acceptor(
            fd: fd, loop: loop, logger: logger, pausedEvent: "health.accept_paused",
            failedEvent: "health.accept_failed"
        ) { [unowned self] fd in self.admit(fd) }
        do {
            try acceptor.start()
        } catch {
            close(fd)
            throw error
        }
    }

    /// Closes the listening socket and every connection.
    func stop() {
        for fd in Array(clients.keys) { finish(fd) }
        acceptor.stop()
        close(acceptor.fd)
    }

    /// One accepted connection (`Acceptor`: close-on-exec and non-blocking already); when every
    /// slot is taken, the oldest answered client makes room.
    private func admit(_ fd: Int32) {
        if clients.count >= Self.maxConnections {
            guard let idle = clients.values.filter({ !$0.answered }).min(by: { $0.serial < $1.serial }) else {
                close(fd)  // every slot is waiting for its answer: those finish within the timeout
                return
            }
            evictions += 1
            logger.debug(
                "health.connection_evicted", metadata: ["idle_ms": "\(EventLoop.nowMillis() - idle.acceptedMillis)"]
            )
            finish(idle.fd)
        }
        nextSerial += 1
        let client = Client(fd: fd, serial: nextSerial)
        clients[fd] = client
        client.timer = loop.schedule(afterMillis: Self.headTimeoutMillis) { [weak self] in
            guard let self, self.clients[fd] === client else { return }
            client.timer = nil
            guard client.answered else {
                return self.respond(fd, HTTPResponse(status: 408, body: "timeout\n"))
            }
            client.timer = self.loop.schedule(afterMillis: Self.requestTimeoutMillis - Self.headTimeoutMillis) {
                [weak self] in
                guard let self, self.clients[fd] === client else { return }
                client.timer = nil
                self.finish(fd)
            }
        }
        do {
            try loop.register(fd: fd, events: .readable) { [unowned self] events in self.handle(fd, events) }
        } catch {
            finish(fd)
        }
    }

    private func handle(_ fd: Int32, _ events: EventLoop.Events) {
        guard let client = clients[fd] else { return }
        if events.contains(.writable) { return flush(fd) }
        guard !client.answered else {
            // Nothing more is read after the request: drain and ignore, close on EOF.
            var scratch = [UInt8](repeating: 0, count: 512)
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { finish(fd) }
            return
        }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let room = min(buffer.count, HTTPRequestParser.maxHeadBytes + 1 - client.input.count)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, room, 0) }
        if count < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return finish(fd)
        }
        if count == 0 { return finish(fd) }
        client.input += buffer[..<count]
        switch HTTPRequestParser.parse(client.input) {
        case .incomplete: break
        case .refused(let status, let reason): respond(fd, HTTPResponse(status: status, body: reason + "\n"))
        case .request(let request):
            client.answered = true
            handler(request) { [weak self] response in
                // The connection may have timed out meanwhile and its fd number been reused.
                guard let self, self.clients[fd] === client else { return }
                self.respond(fd, response)
            }
        }
    }

    private func respond(_ fd: Int32, _ response: HTTPResponse) {
        guard let client = clients[fd], client.output.isEmpty else { return }
        client.answered = true
        client.output = response.encoded()
        flush(fd)
    }

    private func flush(_ fd: Int32) {
        guard let client = clients[fd] else { return }
        while client.written < client.output.count {
            let count = client.output.withUnsafeBytes {
                send(fd, $0.baseAddress! + client.written, $0.count - client.written, Int32(MSG_NOSIGNAL))
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return loop.modify(fd: fd, events: [.readable, .writable]) }
                return finish(fd)
            }
            client.written += count
        }
        finish(fd)
    }

    private func finish(_ fd: Int32) {
        guard let client = clients.removeValue(forKey: fd) else { return }
        if let timer = client.timer { loop.cancel(timer) }
        loop.unregister(fd: fd)
        close(fd)
    }
}
