import KMSCore
import KMSRuntime
import Logging

/// Call handling: header checks, deadlines, forwarding to the broker, answers and the call log.
extension GRPCServer: HTTP2ConnectionDelegate {
    func connection(_ connection: HTTP2Connection, didReceiveHeadersOf stream: GRPCStream) {
        // The checks follow the gRPC over HTTP/2 spec and grpc-go's server where the spec is open.
        guard stream.method == "POST" else {
            return complete(
                stream, on: connection, with: .failure(GRPCStatus(.internal, "method must be POST")), httpStatus: 405)
        }
        guard let contentType = stream.contentType, Self.isGRPCContentType(contentType) else {
            return complete(
                stream, on: connection,
                with: .failure(GRPCStatus(.invalidArgument, "content-type must be application/grpc")),
                httpStatus: 415)
        }
        guard let method = stream.path.flatMap(KMSMethod.init(path:)) else {
            return complete(stream, on: connection, with: .failure(GRPCStatus(.unimplemented, "unknown method")))
        }
        stream.kmsMethod = method
        var timeoutMillis = Int64(Limits.maxDeadlineMillis)
        if let header = stream.timeout {
            guard let timeout = GRPCTimeout(parsing: header) else {
                return complete(
                    stream, on: connection, with: .failure(GRPCStatus(.invalidArgument, "malformed grpc-timeout")))
            }
            stream.hasClientDeadline = true
            timeoutMillis = min(timeout.milliseconds, timeoutMillis)
        }
        stream.deadlineAt = Int64(stream.startNanos / 1_000_000) + timeoutMillis
        armDeadline(stream, on: connection)
    }

    /// The call's deadline timer, while the call is not at the broker (whose `BrokerClient`
    /// enforces the same deadline on the request).
    private func armDeadline(_ stream: GRPCStream, on connection: HTTP2Connection) {
        guard stream.deadlineTimer == nil, !stream.answered else { return }
        let connectionID = connection.id
        let streamID = stream.id
        stream.deadlineTimer = loop.schedule(afterMillis: stream.deadlineAt - EventLoop.nowMillis()) { [weak self] in
            self?.deadlineExpired(connectionID: connectionID, streamID: streamID)
        }
    }

    private func disarmDeadline(_ stream: GRPCStream) {
        if let timer = stream.deadlineTimer { loop.cancel(timer) }
        stream.deadlineTimer = nil
    }

    /// `application/grpc`, optionally followed by `+proto` (or another subtype) or parameters.
    static func isGRPCContentType(_ value: String) -> Bool {
        value == "application/grpc" || value.hasPrefix("application/grpc+") || value.hasPrefix("application/grpc;")
    }

    func connection(_ connection: HTTP2Connection, didReceive message: [UInt8], on stream: GRPCStream) {
        guard stream.kmsMethod != nil else { return }
        stream.requestMessage = message
        forward(stream, on: connection)
    }

    /// Sends the call to the broker, or lets it wait for a broker that is not ready yet
    /// (GRPCServer+BrokerWait.swift). The broker request is built here, each time, so that it
    /// carries the deadline left now.
    func forward(_ stream: GRPCStream, on connection: HTTP2Connection) {
        guard let method = stream.kmsMethod, !stream.answered else { return }
        let remaining = stream.deadlineAt - EventLoop.nowMillis()
        guard remaining > 0 else {
            return complete(stream, on: connection, with: .failure(GRPCStatus(.deadlineExceeded, "deadline exceeded")))
        }
        let call: BrokerCall
        do throws(GRPCStatus) {
            call = try KMSService.brokerCall(
                for: method, message: stream.requestMessage,
                deadlineMillis: stream.hasClientDeadline ? UInt32(clamping: remaining) : 0)
        } catch {
            return complete(stream, on: connection, with: .failure(error))
        }
        stream.uid = call.uid
        switch broker.state {
        case .ready: break
        case .awaitingHello:
            // Connected, the broker not answering yet: it is starting (GRPCServer+BrokerWait.swift).
            return waitForBroker(stream, on: connection)
        case .failed:
            // Split topologies: the broker is away and the front reconnecting (BrokerAway.swift).
            if method == .status { return complete(stream, on: connection, with: KMSService.brokerAwayStatus()) }
            if brokerWait.reconnectPending { return waitForBroker(stream, on: connection) }
            return complete(stream, on: connection, with: .failure(GRPCStatus(brokerCode: .notReady)))
        }
        let connectionID = connection.id
        let streamID = stream.id
        let requestID = broker.send(call.request, deadlineMillis: stream.deadlineAt) { [weak self] result in
            self?.brokerAnswered(connectionID: connectionID, streamID: streamID, result)
        }
        guard let requestID else { return }  // refused at once: the completion answered the call
        stream.brokerRequestID = requestID
        disarmDeadline(stream)
    }

    func connection(_ connection: HTTP2Connection, stream: GRPCStream, failedWith status: GRPCStatus) {
        complete(stream, on: connection, with: .failure(status))
    }

    func connection(_ connection: HTTP2Connection, didClose stream: GRPCStream) {
        disarmDeadline(stream)
        if let requestID = stream.brokerRequestID { broker.cancel(requestID) }
        stream.brokerRequestID = nil
        stopWaiting(stream, on: connection)
        if !stream.answered && stream.headersComplete {
            stream.answered = true
            logCall(stream, status: .cancelled)
        }
    }

    func connectionDidClose(_ connection: HTTP2Connection) {
        connectionClosed(connection)
    }

    /// The completion of the call's broker request: the answer (decoded and checked by the
    /// BrokerClient against its request), or why there is none.
    private func brokerAnswered(
        connectionID: UInt64, streamID: Int32, _ result: Result<BrokerAnswer, BrokerCallError>
    ) {
        guard let connection = connections[connectionID], let stream = connection.streams[streamID],
            !stream.answered
        else {
            logger.debug("broker.answer_dropped", metadata: ["stream": "\(streamID)"])
            return
        }
        stream.brokerRequestID = nil
        switch result {
        case .success(let answer):
            if !brokerStarting(answer: answer, stream: stream, on: connection) {
                complete(stream, on: connection, with: KMSService.response(to: answer))
            }
        case .failure(.deadlineExceeded):
            complete(stream, on: connection, with: .failure(GRPCStatus(.deadlineExceeded, "deadline exceeded")))
        case .failure(.tooManyRequests):
            complete(stream, on: connection, with: .failure(GRPCStatus(brokerCode: .tooManyRequests)))
        case .failure(.notReady):
            complete(stream, on: connection, with: .failure(GRPCStatus(brokerCode: .notReady)))
        case .failure(.connectionLost):
            // A split front waits for the next broker (GRPCServer+BrokerWait.swift); a spawned
            // front has answered every call already and is exiting.
            forward(stream, on: connection)
        }
        // Waiting again (a retry after "not ready", or for the next broker): the deadline is ours.
        if stream.brokerRequestID == nil { armDeadline(stream, on: connection) }
    }

    private func deadlineExpired(connectionID: UInt64, streamID: Int32) {
        guard let connection = connections[connectionID], let stream = connection.streams[streamID] else { return }
        stream.deadlineTimer = nil
        guard !stream.answered else { return }
        if let requestID = stream.brokerRequestID { broker.cancel(requestID) }
        stream.brokerRequestID = nil
        complete(stream, on: connection, with: .failure(GRPCStatus(.deadlineExceeded, "deadline exceeded")))
    }

    /// The one place a call is answered: submits the response and logs the call.
    func complete(
        _ stream: GRPCStream, on connection: HTTP2Connection, with outcome: Result<[UInt8], GRPCStatus>,
        httpStatus: Int = 200
    ) {
        guard !stream.answered else { return }
        disarmDeadline(stream)
        // Answered while at the broker (drain timeout, broker lost): its answer is not waited for.
        if let requestID = stream.brokerRequestID { broker.cancel(requestID) }
        stream.brokerRequestID = nil
        stopWaiting(stream, on: connection)
        switch outcome {
        case .success(let message):
            connection.respond(stream, message: message)
            logCall(stream, status: .ok)
        case .failure(let status):
            connection.respond(stream, status: status, httpStatus: httpStatus)
            logCall(stream, status: status.code)
        }
    }

    /// `kms.call` at debug: method, uid, duration and status. Never a plaintext or ciphertext.
    private func logCall(_ stream: GRPCStream, status: GRPCStatus.Code) {
        let micros = (EventLoop.nowNanos() - stream.startNanos) / 1_000
        callMetrics.record(method: stream.kmsMethod, code: status, micros: micros)
        guard logger.logLevel <= .debug else { return }
        let fraction = String(micros % 1_000)
        logger.debug(
            "kms.call",
            metadata: [
                "method": "\(stream.kmsMethod?.rawValue ?? "unknown")",
                "uid": "\(stream.uid)",
                "duration_ms": "\(micros / 1_000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)",
                "grpc_status": "\(status.rawValue)",
            ])
    }
}
