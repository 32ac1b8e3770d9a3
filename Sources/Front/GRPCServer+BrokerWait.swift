import KMSCore
import KMSRuntime

/// Calls that arrive while the broker is starting wait for it within their deadline instead of
/// failing at once with UNAVAILABLE "broker not ready". With socket activation the first caller
/// is exactly the one that started the front (and, through the broker's socket, the broker): it
/// must be served, not refused 160 ms after it connected.
///
/// Two waits, both bounded by the call's own deadline (`grpc-timeout`, at most
/// `Limits.maxDeadlineMillis`) and by `maxWaiting` calls:
/// - the front is connected but the broker has not answered HELLO (a socket-activated broker
///   still starting): any call is queued and forwarded when HELLO is answered. After a broker
///   loss (split front), Encrypt and Decrypt, including those that were at the lost broker, wait
///   for the first reconnect attempt: it connects at once to a socket systemd holds, so a broker
///   restart loses no call; when nothing listens they get UNAVAILABLE then, and later calls at
///   once, until a connection is made. Status answers healthz `broker unavailable` at once
///   (BrokerAway.swift);
/// - the broker answered an Encrypt or Decrypt "not ready" (not logged in to Vault yet, no
///   active key), or a Status with a starting healthz (`StartingHealth`: `not logged in yet`,
///   `key metadata not read yet`), within `startupWindowMillis` of HELLO and before any call was
///   served: the call is sent again after a short delay. Later "not ready" answers are passed on
///   at once, as before: a broker that has served once and then lost Vault is not starting. Any
///   other healthz (`vault unreachable`, `login failed`, ...) is answered at once.
/// A call that cannot wait (queue full, or too little time left) gets the answer it would have
/// had without waiting. Counted in `BrokerWaitFigures` (`vault_kube_kms_broker_wait_*`,
/// docs/metrics.md).
final class BrokerWaitQueue {
    /// No more calls wait than the broker would accept in flight from this front.
    static let maxWaiting = Limits.maxInFlightPerFront
    /// How long after HELLO a "not ready" answer still means "starting": AppRole login and the
    /// first key read take milliseconds against a healthy Vault; a login that is still failing
    /// after this is reported at once again.
    static let startupWindowMillis: Int64 = 30_000
    /// First re-send delay after a "not ready" answer, doubled per retry up to `maxRetryMillis`.
    static let firstRetryMillis: Int64 = 25
    static let maxRetryMillis: Int64 = 400
    /// A call stops waiting when less than this is left of its deadline, so that its answer
    /// still arrives in time.
    static let answerMarginMillis: Int64 = 100

    struct Entry {
        var connectionID: UInt64
        var streamID: Int32
    }

    /// Calls waiting for the connection to become ready, in arrival order.
    var entries: [Entry] = []
    /// The broker connection was lost and the first reconnect attempt is still to come: calls
    /// wait for it (a socket-activated broker's socket accepts at once; an absent one does not).
    var reconnectPending = false
    /// When the current broker connection answered HELLO (nil: not ready).
    var readySinceMillis: Int64?
    /// A call was served (an answer other than "not ready") on the current connection.
    var servedSinceReady = false
    var figures = BrokerWaitFigures()

    /// The broker is starting: ready recently and nothing served yet.
    func inStartupWindow(now: Int64) -> Bool {
        guard let since = readySinceMillis, !servedSinceReady else { return false }
        return now - since < Self.startupWindowMillis
    }

    static func retryDelay(after retries: Int) -> Int64 {
        min(firstRetryMillis << Int64(min(retries, 8)), maxRetryMillis)
    }
}

/// How the waits ended, for /metrics.
struct BrokerWaitFigures: Equatable {
    /// Calls that waited at least once.
    var waited: UInt64 = 0
    /// Calls that waited and were then answered by a ready broker (whatever the answer).
    var served: UInt64 = 0
    /// Calls that stopped waiting with the answer they would have had without waiting: their
    /// deadline was near, or the startup window was over.
    var gaveUp: UInt64 = 0
    /// Calls that could not wait because `maxWaiting` calls were waiting already.
    var queueFull: UInt64 = 0
    /// Calls waiting now.
    var waiting: Int = 0
}

extension GRPCServer {
    /// The broker connection is not ready: queue the call until it is (bounded).
    func waitForBroker(_ stream: GRPCStream, on connection: HTTP2Connection) {
        let notReady = GRPCStatus(brokerCode: .notReady)
        guard !stream.waitingForBroker else { return }
        guard brokerWait.entries.count < BrokerWaitQueue.maxWaiting else {
            brokerWait.figures.queueFull += 1
            return complete(stream, on: connection, with: .failure(notReady))
        }
        guard stream.deadlineAt - EventLoop.nowMillis() > BrokerWaitQueue.answerMarginMillis else {
            if stream.hasWaited { brokerWait.figures.gaveUp += 1 }
            return complete(stream, on: connection, with: .failure(notReady))
        }
        markWaiting(stream)
        brokerWait.entries.append(.init(connectionID: connection.id, streamID: stream.id))
        // Give up just before the deadline, with the reason, rather than DEADLINE_EXCEEDED.
        let connectionID = connection.id
        let streamID = stream.id
        let giveUpAfter = stream.deadlineAt - EventLoop.nowMillis() - BrokerWaitQueue.answerMarginMillis
        loop.schedule(afterMillis: giveUpAfter) { [weak self] in
            guard let self, let connection = self.connections[connectionID],
                let stream = connection.streams[streamID], stream.waitingForBroker, !stream.answered,
                self.brokerWait.entries.contains(where: { $0.connectionID == connectionID && $0.streamID == streamID })
            else { return }
            self.brokerWait.figures.gaveUp += 1
            self.complete(stream, on: connection, with: .failure(notReady))
            connection.flush()
        }
    }

    /// The split front lost its broker: Encrypt and Decrypt calls sent to it wait (like new
    /// ones) for the first reconnect attempt and, if it connects, for the new broker's HELLO; an
    /// Encrypt or Decrypt sent again is harmless (Transit is stateless for both). Status answers
    /// healthz `broker unavailable` at once. The calls that were at the broker are forwarded again
    /// by their requests' completion (`connectionLost`), which the BrokerClient calls right after
    /// this.
    func brokerConnectionLost() {
        brokerWait.readySinceMillis = nil
        brokerWait.reconnectPending = true
    }

    /// A reconnect attempt found no broker listening: the waiting calls get UNAVAILABLE now, and
    /// until a connection is made new ones do at once (as before: a broker that is away is not
    /// starting).
    func brokerUnreachable() {
        brokerWait.reconnectPending = false
        let waiting = brokerWait.entries
        brokerWait.entries.removeAll()
        for entry in waiting {
            guard let connection = connections[entry.connectionID], let stream = connection.streams[entry.streamID],
                !stream.answered
            else { continue }
            stream.waitingForBroker = false
            brokerWait.figures.gaveUp += 1
            complete(stream, on: connection, with: .failure(GRPCStatus(.unavailable, "broker connection lost")))
            connection.flush()
        }
    }

    /// The broker answered HELLO: forward every waiting call, in arrival order.
    func brokerBecameReady() {
        brokerWait.reconnectPending = false
        brokerWait.readySinceMillis = EventLoop.nowMillis()
        brokerWait.servedSinceReady = false
        let waiting = brokerWait.entries
        brokerWait.entries.removeAll()
        for entry in waiting {
            guard let connection = connections[entry.connectionID], let stream = connection.streams[entry.streamID],
                stream.waitingForBroker, !stream.answered
            else { continue }
            stream.waitingForBroker = false
            forward(stream, on: connection)
            connection.flush()
        }
    }

    /// A broker answer to `stream`: true when it says "starting" and the call will be sent again
    /// (it then must not be answered now).
    func brokerStarting(answer: BrokerAnswer, stream: GRPCStream, on connection: HTTP2Connection) -> Bool {
        let starting: Bool
        switch answer {
        case .status(let status):
            guard status.code == .ok else { return false }
            // Only a healthy Status closes the startup window; a failing reason is answered as is.
            guard StartingHealth.isStarting(status.healthz) else {
                if status.healthz == "ok" { brokerWait.servedSinceReady = true }
                if stream.hasWaited { brokerWait.figures.served += 1 }
                return false
            }
            starting = true
        case .encrypt, .decrypt: starting = answer.code == .notReady
        case .hello, .metrics, .heartbeat: return false
        }
        let now = EventLoop.nowMillis()
        guard starting else {
            brokerWait.servedSinceReady = true
            if stream.hasWaited { brokerWait.figures.served += 1 }
            return false
        }
        let delay = BrokerWaitQueue.retryDelay(after: stream.brokerRetries)
        guard brokerWait.inStartupWindow(now: now),
            stream.deadlineAt - now - delay > BrokerWaitQueue.answerMarginMillis
        else {
            if stream.hasWaited { brokerWait.figures.gaveUp += 1 }
            return false
        }
        stream.brokerRetries += 1
        markWaiting(stream)
        let connectionID = connection.id
        let streamID = stream.id
        loop.schedule(afterMillis: delay) { [weak self] in
            guard let self, let connection = self.connections[connectionID],
                let stream = connection.streams[streamID], stream.waitingForBroker, !stream.answered
            else { return }
            stream.waitingForBroker = false
            self.forward(stream, on: connection)
            connection.flush()
        }
        return true
    }

    /// The call is answered or closed: it waits no longer.
    func stopWaiting(_ stream: GRPCStream, on connection: HTTP2Connection) {
        guard stream.waitingForBroker else { return }
        stream.waitingForBroker = false
        brokerWait.entries.removeAll { $0.connectionID == connection.id && $0.streamID == stream.id }
    }

    private func markWaiting(_ stream: GRPCStream) {
        stream.waitingForBroker = true
        if !stream.hasWaited {
            stream.hasWaited = true
            brokerWait.figures.waited += 1
        }
    }

    /// The figures for /metrics.
    var brokerWaitFigures: BrokerWaitFigures {
        var figures = brokerWait.figures
        figures.waiting = brokerWait.entries.count
        return figures
    }
}
