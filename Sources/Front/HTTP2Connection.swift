import CNGHTTP2
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// What a connection reports to the gRPC server. Every method may be called from inside an
/// nghttp2 callback; the connection defers its own flushing and closing until nghttp2 returns.
protocol HTTP2ConnectionDelegate: AnyObject {
    /// The request headers of a new call are complete.
    func connection(_ connection: HTTP2Connection, didReceiveHeadersOf stream: GRPCStream)
    /// The client ended the request stream with exactly one valid message.
    func connection(_ connection: HTTP2Connection, didReceive message: [UInt8], on stream: GRPCStream)
    /// The request body can never be valid; answer `status`.
    func connection(_ connection: HTTP2Connection, stream: GRPCStream, failedWith status: GRPCStatus)
    /// The stream is gone (answered and closed, reset by the client, or its connection closed).
    func connection(_ connection: HTTP2Connection, didClose stream: GRPCStream)
    func connectionDidClose(_ connection: HTTP2Connection)
}

/// One accepted client connection: a non-blocking stream socket driven by the event loop and an
/// nghttp2 server session (`nghttp2_session_mem_recv` / `nghttp2_session_mem_send`).
///
/// Anything malformed at the HTTP/2 level ends this connection only: nghttp2 answers protocol
/// errors with GOAWAY, after which the session wants neither to read nor to write, and the
/// connection closes itself.
final class HTTP2Connection {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: grpc-go queues calls beyond it on the client side. The
    /// apiserver overlaps only Decrypts (watch-cache fill at startup), far fewer than 100.
    static let maxConcurrentStreams: UInt32 = 100
    /// SETTINGS_MAX_HEADER_LIST_SIZE, also enforced per stream: a KMS call's headers are a few
    /// hundred bytes; grpc-go's own default limit is 16 MiB, which a local plugin does not need.
    static let maxHeaderListBytes = 16 * 1024
    /// A connection that has not sent the client preface and SETTINGS by then is closed. grpc-go's
    /// server allows 120 s (its ConnectionTimeout default) for peers across a network; a client on
    /// a local Unix socket sends its preface at once, so 10 s only bounds what a stuck or hostile
    /// peer can hold (one of `GRPCServer.maxConnections` slots).
    static let handshakeTimeoutMillis: Int64 = 10_000
    /// A connection with no open call and no bytes received for this long gets GOAWAY. The
    /// apiserver sends Status about every 20 s, so its connection stays up; grpc-go reconnects
    /// transparently after a GOAWAY anyway.
    static let idleTimeoutMillis: Int64 = 60_000
    /// Output gathered from nghttp2 before one send(2).
    static let outputBatchBytes = 64 * 1024
    /// Reads per readiness event before yielding to other connections (level-triggered epoll
    /// calls again).
    static let readsPerEvent = 4
    /// Between the shutdown notice and the final GOAWAY: far longer than a local client needs to
    /// read the notice, short enough not to matter in a drain bounded by seconds.
    static let shutdownNoticeMillis: Int64 = 200

    let id: UInt64
    let fd: Int32
    weak var delegate: HTTP2ConnectionDelegate?
    private(set) var streams: [Int32: GRPCStream] = [:]
    /// The stream the last nghttp2 callback named: a call's HEADERS alone bring one callback per
    /// field, all for the same stream, and each dictionary lookup hashes the id (callgrind).
    /// Cleared whenever a stream leaves `streams`.
    private var recentStream: GRPCStream?

    private unowned let loop: EventLoop
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var session: OpaquePointer?
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var watchingWritable = false
    /// True while nghttp2 is running our callbacks: no mem_send and no session_del until it returns.
    private var inSession = false
    private var closeRequested = false
    private var closed = false
    private var handshakeDone = false
    private var goingAway = false
    private var lastActivity = EventLoop.nowMillis()
    private var timer: EventLoop.TimerID?
    private var noticeTimer: EventLoop.TimerID?

    /// Creates the session, queues the server preface (SETTINGS) and starts watching `fd`.
    /// `readBuffer` is scratch space shared by all connections of the single-threaded server.
    init(
        id: UInt64, fd: Int32, loop: EventLoop, readBuffer: UnsafeMutableRawBufferPointer,
        delegate: HTTP2ConnectionDelegate
    ) throws(SystemError) {
        self.id = id
        self.fd = fd
        self.loop = loop
        self.readBuffer = readBuffer
        self.delegate = delegate
        guard let callbacks = HTTP2Callbacks.make() else {
            throw SystemError("nghttp2_session_callbacks_new", errno: ENOMEM)
        }
        defer { nghttp2_session_callbacks_del(callbacks) }
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { throw SystemError("nghttp2_option_new", errno: ENOMEM) }
        defer { nghttp2_option_del(option) }
        // Closed streams are not kept for the RFC 7540 priority tree: nothing here uses priorities.
        nghttp2_option_set_no_closed_streams(option, 1)
        // nghttp2's HTTP messaging checks refuse an `:authority` that is not a URI authority (a
        // grpc-go client sends the socket path); HTTP2RequestRules applies the same checks but
        // that one, per stream (`header`, `dataChunk`, `frameReceived`).
        nghttp2_option_set_no_http_messaging(option, 1)
        var created: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        guard nghttp2_session_server_new2(&created, callbacks, userData, option) == 0, let created else {
            throw SystemError("nghttp2_session_server_new", errno: ENOMEM)
        }
        session = created
        var settings = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: Self.maxConcurrentStreams),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(Self.maxHeaderListBytes)),
        ]
        guard nghttp2_submit_settings(created, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count) == 0 else {
            nghttp2_session_del(created)
            session = nil
            throw SystemError("nghttp2_submit_settings", errno: ENOMEM)
        }
        do {
            try loop.register(fd: fd, events: .readable) { [unowned self] events in self.handle(events) }
        } catch {
            nghttp2_session_del(created)
            session = nil
            throw error
        }
        timer = loop.schedule(afterMillis: Self.handshakeTimeoutMillis) { [weak self] in self?.housekeeping() }
        flush()
    }

    var isClosed: Bool { closed }

    // MARK: Responses

    /// Answers a call with one message: HEADERS, DATA, then trailers `grpc-status: 0`.
    func respond(_ stream: GRPCStream, message: [UInt8]) {
        guard let session, !stream.answered, streams[stream.id] === stream else { return }
        stream.answered = true
        stream.responseBody = GRPCFraming.frame(message)
        var provider = nghttp2_data_provider(source: nghttp2_data_source(), read_callback: HTTP2Callbacks.readResponse)
        let headers = HTTP2Headers.response
        let result = nghttp2_submit_response(session, stream.id, headers.pointer, headers.count, &provider)
        if result != 0 { resetStream(stream.id, code: NGHTTP2_INTERNAL_ERROR) }
        flushSoon()
    }

    /// Answers a call with an error: a trailers-only response (one HEADERS frame with END_STREAM).
    /// `httpStatus` is 200 except where the gRPC HTTP/2 spec asks for another (415, 405).
    func respond(_ stream: GRPCStream, status: GRPCStatus, httpStatus: Int = 200) {
        guard let session, !stream.answered, streams[stream.id] === stream else { return }
        stream.answered = true
        let headers = [
            (name: ":status", value: String(httpStatus)),
            (name: "content-type", value: "application/grpc"),
            (name: "grpc-status", value: String(status.code.rawValue)),
            (name: "grpc-message", value: status.encodedMessage),
        ]
        // Answered before the client finished sending (oversized, compressed, bad headers): once
        // the response is out, tell it to stop sending (RFC 9113 section 8.1; grpc-go does the
        // same). Not before: a queued RST_STREAM makes nghttp2 drop the pending HEADERS.
        stream.resetAfterResponse = !stream.requestComplete
        let result = HTTP2Headers.with(headers) { nghttp2_submit_response(session, stream.id, $0, $1, nil) }
        if result != 0 { resetStream(stream.id, code: NGHTTP2_INTERNAL_ERROR) }
        flushSoon()
    }

    /// Graceful GOAWAY in two steps (RFC 9113 section 6.8): first a shutdown notice (GOAWAY
    /// naming stream 2^31-1), so a call the client writes before it has read the notice is still
    /// served; after `shutdownNoticeMillis` the final GOAWAY names the last stream this
    /// connection will process. Open calls finish, then the connection closes itself. A single
    /// GOAWAY closed an idle connection at once, and a call written in that instant failed
    /// ("Stream removed", seen in the systemd upgrade drill).
    func goAway() {
        guard let session, !goingAway else { return }
        goingAway = true
        guard nghttp2_submit_shutdown_notice(session) == 0 else { return finalGoAway() }
        flushSoon()
        noticeTimer = loop.schedule(afterMillis: Self.shutdownNoticeMillis) { [weak self] in
            self?.finalGoAway()
        }
    }

    private func finalGoAway() {
        noticeTimer = nil
        guard let session, !closed else { return }
        _ = nghttp2_submit_goaway(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue, nil, 0)
        flushSoon()
    }

    private func resetStream(_ streamID: Int32, code: nghttp2_error_code) {
        guard let session else { return }
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, code.rawValue)
    }

    // MARK: I/O

    private func handle(_ events: EventLoop.Events) {
        if !events.isDisjoint(with: [.readable, .hangup, .error]) { readAvailable() }
        if !closed, events.contains(.writable) { flush() }
    }

    private func readAvailable() {
        for _ in 0..<Self.readsPerEvent {
            guard !closed, let session else { return }
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if count == 0 { return close() }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                return close()
            }
            lastActivity = EventLoop.nowMillis()
            inSession = true
            let consumed = nghttp2_session_mem_recv(
                session, readBuffer.baseAddress?.assumingMemoryBound(to: UInt8.self), count)
            inSession = false
            // A negative result (bad client magic, flooding, callback failure) is fatal to this
            // connection: nghttp2 has nothing more to say on it.
            if consumed < 0 || closeRequested { return close() }
        }
        flush()
    }

    /// Writes what nghttp2 has queued; waits for writability when the socket is full.
    func flush() {
        guard !closed, !inSession, let session else { return }
        while true {
            if outputOffset < output.count {
                let sent = output.withUnsafeBytes { raw in
                    send(fd, raw.baseAddress.map { $0 + outputOffset }, raw.count - outputOffset, Int32(MSG_NOSIGNAL))
                }
                if sent > 0 {
                    outputOffset += sent
                    continue
                }
                if sent < 0 && errno == EINTR { continue }
                if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return watchWritable(true) }
                return close()
            }
            output.removeAll(keepingCapacity: output.capacity <= Self.outputBatchBytes * 2)
            outputOffset = 0
            inSession = true
            while output.count < Self.outputBatchBytes {
                var chunk: UnsafePointer<UInt8>?
                let length = nghttp2_session_mem_send(session, &chunk)
                if length < 0 {
                    inSession = false
                    return close()
                }
                guard length > 0, let chunk else { break }
                output.append(contentsOf: UnsafeBufferPointer(start: chunk, count: length))
            }
            inSession = false
            if output.isEmpty { break }
        }
        watchWritable(false)
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 { close() }
    }

    private func flushSoon() {
        // Inside nghttp2 callbacks the read path flushes once mem_recv returns.
        if !inSession { flush() }
    }

    private func watchWritable(_ on: Bool) {
        guard on != watchingWritable, !closed else { return }
        watchingWritable = on
        loop.modify(fd: fd, events: on ? [.readable, .writable] : .readable)
    }

    /// Handshake timeout first, then the idle timeout, re-armed from the last activity.
    private func housekeeping() {
        timer = nil
        guard !closed else { return }
        guard handshakeDone else { return close() }
        let idleFor = EventLoop.nowMillis() - lastActivity
        if streams.isEmpty && idleFor >= Self.idleTimeoutMillis {
            goAway()
            return
        }
        let next = max(1_000, Self.idleTimeoutMillis - idleFor)
        timer = loop.schedule(afterMillis: next) { [weak self] in self?.housekeeping() }
    }

    /// Closes the socket and the session; every open stream is reported closed.
    func close() {
        guard !closed else { return }
        guard !inSession else {
            closeRequested = true
            return
        }
        closed = true
        if let timer { loop.cancel(timer) }
        if let noticeTimer { loop.cancel(noticeTimer) }
        loop.unregister(fd: fd)
        Glibc.close(fd)
        let open = streams
        streams = [:]
        recentStream = nil
        for stream in open.values.sorted(by: { $0.id < $1.id }) { delegate?.connection(self, didClose: stream) }
        if let session { nghttp2_session_del(session) }
        session = nil
        delegate?.connectionDidClose(self)
    }

    // MARK: Called by the nghttp2 callbacks

    func beginRequest(streamID: Int32) {
        let stream = GRPCStream(id: streamID, startNanos: EventLoop.nowNanos())
        streams[streamID] = stream
        recentStream = stream
    }

    /// The open stream with this id (the one the previous callback named, without a lookup).
    private func stream(_ streamID: Int32) -> GRPCStream? {
        if let recentStream, recentStream.id == streamID { return recentStream }
        let found = streams[streamID]
        if found != nil { recentStream = found }
        return found
    }

    /// Records the headers the front uses; false refuses the header list (too large). A field
    /// that breaks the request rules marks the stream malformed (reset when its HEADERS end).
    func header(streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let stream = stream(streamID) else { return true }
        stream.headerListBytes += name.count + value.count + 32
        guard stream.headerListBytes <= Self.maxHeaderListBytes else { return false }
        guard !stream.malformed else { return true }
        let kind = HTTP2HeaderName(name)
        guard stream.rules.field(kind, name: name, value: value, isTrailer: stream.headersComplete) else {
            stream.malformed = true
            return true
        }
        guard !stream.headersComplete else { return true }  // request trailers: ignored
        // The values a call uses are kept as the static strings they usually are (no allocation);
        // anything else is copied.
        switch kind {
        case .method: stream.method = Self.text(value, usually: "POST")
        case .path: stream.path = KMSMethod.knownPath(value) ?? String(decoding: value, as: UTF8.self)
        case .contentType where stream.contentType == nil:
            stream.contentType = Self.text(value, usually: "application/grpc")
        case .grpcTimeout where stream.timeout == nil: stream.timeout = String(decoding: value, as: UTF8.self)
        default: break
        }
        return true
    }

    private static func text(_ value: UnsafeBufferPointer<UInt8>, usually literal: String) -> String {
        HTTP2HeaderName.equal(value, literal) ? literal : String(decoding: value, as: UTF8.self)
    }

    func dataChunk(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = stream(streamID), !stream.malformed else { return }
        guard stream.rules.data(count: bytes.count) else { return refuseMalformed(stream) }
        guard stream.headersComplete, !stream.answered else { return }
        do throws(GRPCStatus) {
            try stream.body.append(bytes)
        } catch {
            delegate?.connection(self, stream: stream, failedWith: error)
        }
    }

    func frameReceived(type: UInt8, flags: UInt8, streamID: Int32, isRequestHeaders: Bool) {
        if UInt32(type) == NGHTTP2_SETTINGS.rawValue { handshakeDone = true }
        guard let stream = stream(streamID), !stream.answered || !stream.malformed else { return }
        let isHeaders = UInt32(type) == NGHTTP2_HEADERS.rawValue
        let endsStream = UInt32(flags) & NGHTTP2_FLAG_END_STREAM.rawValue != 0
        if isHeaders {
            // Request HEADERS lacking a required field, or trailers that do not end the stream.
            let complete = isRequestHeaders ? stream.rules.headersAreComplete() : endsStream
            if stream.malformed || !complete { return refuseMalformed(stream) }
        }
        if isRequestHeaders {
            stream.headersComplete = true
            delegate?.connection(self, didReceiveHeadersOf: stream)
        }
        let carriesEndStream = UInt32(type) == NGHTTP2_DATA.rawValue || isHeaders
        guard carriesEndStream, endsStream else { return }
        guard stream.rules.endOfStreamIsValid() else { return refuseMalformed(stream) }
        stream.requestComplete = true
        guard !stream.answered else { return }
        do throws(GRPCStatus) {
            let message = try stream.body.finish()
            delegate?.connection(self, didReceive: message, on: stream)
        } catch {
            delegate?.connection(self, stream: stream, failedWith: error)
        }
    }

    /// A request that breaks the HTTP/2 request rules: RST_STREAM PROTOCOL_ERROR, as nghttp2
    /// answers it; the call (if it was already announced) is closed with the stream.
    private func refuseMalformed(_ stream: GRPCStream) {
        guard !(stream.malformed && stream.answered) else { return }
        stream.malformed = true
        stream.answered = true
        resetStream(stream.id, code: NGHTTP2_PROTOCOL_ERROR)
    }

    func frameSent(type: UInt8, flags: UInt8, streamID: Int32) {
        guard UInt32(type) == NGHTTP2_HEADERS.rawValue, UInt32(flags) & NGHTTP2_FLAG_END_STREAM.rawValue != 0,
            let stream = stream(streamID), stream.resetAfterResponse, !stream.requestComplete
        else { return }
        stream.resetAfterResponse = false
        resetStream(streamID, code: NGHTTP2_NO_ERROR)
    }

    func streamClosed(streamID: Int32) {
        if recentStream?.id == streamID { recentStream = nil }
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        delegate?.connection(self, didClose: stream)
    }

    func readResponse(streamID: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: UnsafeMutablePointer<UInt32>)
        -> Int
    {
        guard let session, let stream = stream(streamID) else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let count = min(stream.responseBody.count - stream.responseOffset, buffer.count)
        stream.responseBody.withUnsafeBytes { source in
            guard count > 0, let base = source.baseAddress else { return }
            buffer.baseAddress?.copyMemory(from: base + stream.responseOffset, byteCount: count)
        }
        stream.responseOffset += count
        if stream.responseOffset == stream.responseBody.count {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            stream.responseBody = []
            stream.responseOffset = 0
            let trailers = HTTP2Headers.okTrailers
            let result = nghttp2_submit_trailer(session, streamID, trailers.pointer, trailers.count)
            if result != 0 { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        }
        return count
    }
}
