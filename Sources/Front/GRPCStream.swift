import KMSRuntime

/// The state of one gRPC call on one HTTP/2 stream, from its HEADERS to its close.
final class GRPCStream {
    let id: Int32
    /// Monotonic start of the call, for the deadline and the call log line.
    let startNanos: UInt64

    // Request headers the front looks at; everything else is ignored.
    var method: String?
    var path: String?
    var contentType: String?
    var timeout: String?
    /// Bytes of the request header list, counted as HTTP/2 does (name + value + 32 per field).
    var headerListBytes = 0
    /// RFC 9113 request rules (nghttp2's HTTP messaging checks, any `:authority` accepted).
    var rules = HTTP2RequestRules()
    /// A rule was broken: the stream is reset with PROTOCOL_ERROR and nothing else happens.
    var malformed = false
    var headersComplete = false
    /// The client has sent END_STREAM.
    var requestComplete = false

    var body = GRPCMessageReader()
    var kmsMethod: KMSMethod?
    /// The request's uid once the message is parsed, for the log line only.
    var uid = ""
    /// The broker request forwarded for this call, while it is outstanding.
    var brokerRequestID: UInt32?
    /// The request message, kept while the call may still be (re)forwarded to the broker
    /// (GRPCServer+BrokerWait.swift).
    var requestMessage: [UInt8] = []
    /// The call is queued until the broker connection is ready, or a retry timer is pending.
    var waitingForBroker = false
    /// The call has waited for the broker at least once (counted once in the metric).
    var hasWaited = false
    /// Re-sends after a "not ready" answer from a starting broker.
    var brokerRetries = 0
    /// Monotonic milliseconds at which the front answers DEADLINE_EXCEEDED: the client's
    /// grpc-timeout, capped at `Limits.maxDeadlineMillis` (also the cap when none is given).
    var deadlineAt: Int64 = 0
    /// The client sent grpc-timeout (otherwise the broker is told "no deadline", 0).
    var hasClientDeadline = false
    var deadlineTimer: EventLoop.TimerID?
    /// A response (or error status) has been submitted; later events for the call are ignored.
    var answered = false
    /// The call was answered before the client finished sending: reset the stream (NO_ERROR)
    /// once the response HEADERS are on the wire.
    var resetAfterResponse = false

    /// The framed response message, pulled by nghttp2 through the data source callback.
    var responseBody: [UInt8] = []
    var responseOffset = 0

    init(id: Int32, startNanos: UInt64) {
        self.id = id
        self.startNanos = startNanos
    }
}
