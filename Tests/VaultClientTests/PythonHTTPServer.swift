#if canImport(Glibc)
    import Glibc
#endif

/// A tiny HTTP/1.1 keep-alive server in a python3 subprocess, for testing the libcurl transport
/// without a network. Every answer is JSON with the client's source port (one port for several
/// requests proves connection reuse), the request headers and body.
/// Paths: `/v1/slow` sleeps 2 s; `/v1/drop` closes the connection without answering.
final class PythonHTTPServer {
    static let script = #"""
        import http.server, json, os, sys, threading, time
        # Exit when the test process goes away (stdin is a pipe whose write end the test holds).
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args): pass
            def answer(self, body_text):
                if self.path == "/v1/slow": time.sleep(2)
                if self.path == "/v1/drop":
                    self.close_connection = True
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                body = json.dumps({"port": self.client_address[1], "method": self.command, "path": self.path,
                                   "headers": headers, "body": body_text}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_GET(self): self.answer("")
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                self.answer(self.rfile.read(length).decode())
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        server.daemon_threads = True
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let port: Int
    private let pid: pid_t
    private let lifeline: Int32

    init() throws {
        var pipeFDs: [Int32] = [-1, -1]
        var lifelineFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0, pipe(&lifelineFDs) == 0 else { throw ServerError("pipe") }
        for fd in pipeFDs + lifelineFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, lifelineFDs[0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        // The test runner blocks signals in its threads; the child must start with none blocked.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let arguments = ["python3", "-c", Self.script]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let result = posix_spawnp(&child, "python3", &actions, &attributes, &argv, environ)
        close(pipeFDs[1])
        close(lifelineFDs[0])
        lifeline = lifelineFDs[1]
        guard result == 0 else {
            close(pipeFDs[0])
            close(lifeline)
            throw ServerError("posix_spawnp python3: \(result)")
        }
        pid = child
        var line: [UInt8] = []
        var pollFD = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
        while !line.contains(0x0A) {
            guard poll(&pollFD, 1, 10_000) == 1 else { break }
            var byte: UInt8 = 0
            guard read(pipeFDs[0], &byte, 1) == 1 else { break }
            line.append(byte)
        }
        close(pipeFDs[0])
        guard let port = Int(String(decoding: line.filter { $0 != 0x0A }, as: UTF8.self)) else {
            close(lifeline)
            kill(child, SIGKILL)
            waitpid(child, nil, 0)
            throw ServerError("python3 server did not report its port")
        }
        self.port = port
    }

    deinit {
        close(lifeline)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    struct ServerError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
