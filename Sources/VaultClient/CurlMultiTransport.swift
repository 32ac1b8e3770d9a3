import CCurl
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// The production `VaultTransport`: libcurl's multi-socket interface driven by the broker's
/// `EventLoop`. libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
/// wake it (CURLMOPT_TIMERFUNCTION); we feed events back with `curl_multi_socket_action` and
/// collect finished transfers with `curl_multi_info_read`. Finished easy handles are kept (up to
/// `idleHandleLimit`) and reused for the next requests, which saves libcurl's per-handle set-up;
/// connections stay alive in the multi handle's connection cache between requests.
public final class CurlMultiTransport: VaultTransport {
    /// How to reach Vault. Everything here is public configuration, nothing secret.
    public struct Options: Sendable {
        /// `scheme://host[:port]`, validated, without trailing slash.
        public var baseURL: String
        /// PEM CA bundle; nil means the system trust store.
        public var caFile: String?
        public var connectTimeoutMillis: Int
        /// SNI name to present and verify; the TCP connection still goes to `baseURL`'s host.
        public var serverName: String?
        /// Client certificate and key (PEM) for listeners that require one.
        public var clientCertFile: String?
        public var clientKeyFile: String?
        /// Development only: no verification of Vault's certificate or host name.
        public var skipVerify: Bool
        /// The proxy for every request; nil: none, whatever `http_proxy`/`HTTPS_PROXY`/
        /// `ALL_PROXY`/`NO_PROXY` say (each handle sets CURLOPT_PROXY and CURLOPT_NOPROXY).
        public var proxy: String?

        public init(
            baseURL: String, caFile: String? = nil, connectTimeoutMillis: Int = 5000, serverName: String? = nil,
            clientCertFile: String? = nil, clientKeyFile: String? = nil, skipVerify: Bool = false
        ) {
            self.baseURL = baseURL
            self.caFile = caFile
            self.connectTimeoutMillis = connectTimeoutMillis
            self.serverName = serverName
            self.clientCertFile = clientCertFile
            self.clientKeyFile = clientKeyFile
            self.skipVerify = skipVerify
        }

        /// The URL prefix requests use: with an SNI name, the name replaces the host so that
        /// libcurl presents and verifies it, and `connectTo` sends the TCP connection to the
        /// configured address (CURLOPT_CONNECT_TO).
        var requestBaseURL: String {
            guard let serverName, let target = HostPort(baseURL: baseURL) else { return baseURL }
            return "\(target.scheme)://\(serverName.contains(":") ? "[\(serverName)]" : serverName):\(target.port)"
        }

        /// The options of `configuration`, for the Vault at `baseURL` (default: the first address).
        public init(_ configuration: BrokerConfiguration, baseURL: String? = nil) {
            self.init(
                baseURL: baseURL ?? configuration.vaultAddress, caFile: configuration.caFile,
                connectTimeoutMillis: configuration.connectTimeoutMillis, serverName: configuration.tlsServerName,
                clientCertFile: configuration.tlsClientCertFile, clientKeyFile: configuration.tlsClientKeyFile,
                skipVerify: configuration.tlsSkipVerify)
            proxy = configuration.vaultProxy
        }

        /// `name:port:host:port` for CURLOPT_CONNECT_TO, when an SNI name is set.
        var connectTo: String? {
            guard let serverName, let target = HostPort(baseURL: baseURL) else { return nil }
            let name = serverName.contains(":") ? "[\(serverName)]" : serverName
            let host = target.host.contains(":") ? "[\(target.host)]" : target.host
            return "\(name):\(target.port):\(host):\(target.port)"
        }
    }

    private let loop: EventLoop
    private let options: Options
    private let multi: UnsafeMutableRawPointer
    private var transfers: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    /// Finished easy handles, carrying only the options every request shares.
    private var idleHandles: [UnsafeMutableRawPointer] = []
    /// CURLOPT_CONNECT_TO for an SNI name; shared by every handle, freed in deinit.
    private let connectToList: UnsafeMutablePointer<curl_slist>?
    /// `options.requestBaseURL` + `/v1/`, computed once.
    private let urlPrefix: String
    /// Easy handles created so far (a reused handle is not counted again).
    private(set) var handlesCreated = 0
    private var watchedSockets: Set<Int32> = []
    private var timer: EventLoop.TimerID?

    /// Idle connections to Vault kept for reuse. libcurl's default is 4x the transfers currently
    /// added; with one easy handle per request that shrinks as a burst drains and closes the idle
    /// connections, so the next burst reconnects (measured: 3-32 new connections per 1000 Encrypts
    /// at concurrency 8, 48-58 at 64; docs/benchmarks.md). 64 covers kube-apiserver's bursts.
    static let connectionCacheSize = 64

    /// Finished easy handles kept for reuse. Each holds libcurl's buffers (tens of KiB); more
    /// than this after a burst is memory without a use.
    static let idleHandleLimit = 16

    /// Creates the multi handle; requests run on `loop`.
    public init(loop: EventLoop, options: Options) throws(ConfigurationError) {
        // CURL_GLOBAL_DEFAULT (SSL | WIN32); reference-counted by libcurl, released in deinit.
        guard curl_global_init(3) == CURLE_OK else { throw ConfigurationError("libcurl global initialisation failed") }
        guard let multi = curl_multi_init() else {
            curl_global_cleanup()
            throw ConfigurationError("libcurl multi handle could not be created")
        }
        self.loop = loop
        self.options = options
        self.multi = multi
        connectToList = options.connectTo.map { curl_slist_append(nil, $0) } ?? nil
        urlPrefix = options.requestBaseURL + "/v1/"
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = kms_curl_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, me)
        _ = kms_curl_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, me)
        _ = kms_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, Self.connectionCacheSize)
        _ = kms_curl_multi_setopt_socket_cb(multi) { _, socket, what, userp, _ in
            guard let userp else { return 0 }
            Unmanaged<CurlMultiTransport>.fromOpaque(userp).takeUnretainedValue().watch(socket: socket, what: what)
            return 0
        }
        _ = kms_curl_multi_setopt_timer_cb(multi) { _, timeoutMillis, userp in
            guard let userp else { return 0 }
            Unmanaged<CurlMultiTransport>.fromOpaque(userp).takeUnretainedValue().setTimer(millis: timeoutMillis)
            return 0
        }
    }

    deinit {
        if let timer { loop.cancel(timer) }
        for socket in watchedSockets { loop.unregister(fd: socket) }
        watchedSockets.removeAll()
        _ = kms_curl_multi_setopt_ptr(multi, CURLMOPT_SOCKETDATA, nil)
        _ = kms_curl_multi_setopt_ptr(multi, CURLMOPT_TIMERDATA, nil)
        for (easy, transfer) in transfers {
            curl_multi_remove_handle(multi, easy)
            transfer.release()
            curl_easy_cleanup(easy)
        }
        transfers.removeAll()
        for easy in idleHandles { curl_easy_cleanup(easy) }
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
        curl_slist_free_all(connectToList)
        curl_global_cleanup()
    }

    public var inFlightCount: Int { transfers.count }

    public func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void) {
        guard let easy = idleHandles.popLast() ?? newHandle() else {
            loop.schedule(afterMillis: 0) { completion(.failed(.other("could not prepare the request"))) }
            return
        }
        guard
            let transfer = CurlTransfer(
                easy: easy, request: request, urlPrefix: urlPrefix, connectTimeoutMillis: options.connectTimeoutMillis,
                completion: completion)
        else {
            // A handle libcurl refused an option on is not reused: its state is unknown.
            curl_easy_cleanup(easy)
            loop.schedule(afterMillis: 0) { completion(.failed(.other("could not prepare the request"))) }
            return
        }
        guard curl_multi_add_handle(multi, easy) == CURLM_OK else {
            transfer.release()
            curl_easy_cleanup(easy)
            loop.schedule(afterMillis: 0) { completion(.failed(.other("could not start the request"))) }
            return
        }
        transfers[easy] = transfer
    }

    private func newHandle() -> UnsafeMutableRawPointer? {
        let easy = CurlTransfer.makeHandle(options, connectTo: connectToList)
        if easy != nil { handlesCreated += 1 }
        return easy
    }

    /// A finished handle goes back to the idle list (or is cleaned up when the list is full).
    private func recycle(_ easy: UnsafeMutableRawPointer) {
        if idleHandles.count < Self.idleHandleLimit {
            idleHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
        }
    }

    public func cancelAll() {
        let cancelled = transfers
        transfers.removeAll()
        for (easy, transfer) in cancelled {
            curl_multi_remove_handle(multi, easy)
            transfer.release()
            // Aborted mid-transfer: not kept.
            curl_easy_cleanup(easy)
        }
        for (_, transfer) in cancelled { transfer.completion(.failed(.cancelled)) }
    }

    // MARK: libcurl callbacks (never call back into libcurl from here)

    private func watch(socket: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if watchedSockets.remove(socket) != nil { loop.unregister(fd: socket) }
            return
        }
        var events: EventLoop.Events = []
        if what & CURL_POLL_IN != 0 { events.insert(.readable) }
        if what & CURL_POLL_OUT != 0 { events.insert(.writable) }
        if watchedSockets.contains(socket) {
            loop.modify(fd: socket, events: events)
            return
        }
        do {
            try loop.register(fd: socket, events: events) { [weak self] ready in self?.socketReady(socket, ready) }
            watchedSockets.insert(socket)
        } catch {
            // The transfer on this socket will time out; nothing else can be done from a callback.
        }
    }

    private func setTimer(millis: Int) {
        if let timer { loop.cancel(timer) }
        timer = nil
        guard millis >= 0 else { return }
        timer = loop.schedule(afterMillis: Int64(millis)) { [weak self] in
            guard let self else { return }
            self.timer = nil
            self.socketAction(socket: -1, mask: 0)  // CURL_SOCKET_TIMEOUT
        }
    }

    // MARK: event loop side

    private func socketReady(_ socket: Int32, _ events: EventLoop.Events) {
        var mask: Int32 = 0
        if !events.intersection([.readable, .hangup, .peerClosed]).isEmpty { mask |= CURL_CSELECT_IN }
        if events.contains(.writable) { mask |= CURL_CSELECT_OUT }
        if events.contains(.error) { mask |= CURL_CSELECT_ERR }
        socketAction(socket: socket, mask: mask)
    }

    private func socketAction(socket: Int32, mask: Int32) {
        var running: Int32 = 0
        _ = curl_multi_socket_action(multi, socket, mask, &running)
        collectFinished()
    }

    private func collectFinished() {
        var finished: [(UnsafeMutableRawPointer, CURLcode)] = []
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
            finished.append((easy, message.pointee.data.result))
        }
        // The messages are invalid once a handle is removed, so removal happens after the drain.
        for (easy, code) in finished {
            guard let transfer = transfers.removeValue(forKey: easy) else { continue }
            curl_multi_remove_handle(multi, easy)
            let response = transfer.response(code: code)
            transfer.release()
            recycle(easy)
            transfer.completion(response)
        }
    }
}
