import KMSCore

/// The state of one front connection: a small state machine, not a set of flags.
enum FrontState: Hashable, Sendable {
    /// Connected; only HELLO is allowed.
    case awaitingHello
    /// HELLO done; STATUS, ENCRYPT, DECRYPT, METRICS and HEARTBEAT are allowed.
    case ready
}

/// One row of the dispatch table: in which states a request type is allowed, whether it may come
/// only once per connection, and how its payload is decoded and handed to the service (handlers of
/// requests that wait for Vault take an in-flight slot: `FrontConnection.beginVaultRequest`).
struct DispatchRule: Sendable {
    typealias Dispatch =
        @Sendable (_ service: BrokerService, _ connection: FrontConnection, _ requestID: UInt32, _ payload: [UInt8])
        throws(BrokerProtocolError) -> Void

    let allowedStates: Set<FrontState>
    let onceOnly: Bool
    /// Decodes the payload exactly (limits, no trailing bytes) and, only if that succeeds, calls
    /// the handler. A decode error closes the connection.
    let dispatch: Dispatch
}

/// The broker denies by default: a request type that is not in this table (answer types,
/// anything unknown) closes the connection. There is no `default:` anywhere on this path.
enum DispatchTable {
    static let rules: [BrokerMessageType: DispatchRule] = [
        .helloRequest: DispatchRule(allowedStates: [.awaitingHello], onceOnly: true) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            service.answerHello(connection, requestID, try HelloRequest.decode(payload))
        },
        .statusRequest: DispatchRule(allowedStates: [.ready], onceOnly: false) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            try decodeEmptyRequest(payload)
            service.answerStatus(connection, requestID)
        },
        .heartbeatRequest: DispatchRule(allowedStates: [.ready], onceOnly: false) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            try decodeEmptyRequest(payload)
            service.answerHeartbeat(connection, requestID)
        },
        .metricsRequest: DispatchRule(allowedStates: [.ready], onceOnly: false) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            try decodeEmptyRequest(payload)
            service.answerMetrics(connection, requestID)
        },
        .encryptRequest: DispatchRule(allowedStates: [.ready], onceOnly: false) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            service.startEncrypt(connection, requestID, try EncryptRequest.decode(payload))
        },
        .decryptRequest: DispatchRule(allowedStates: [.ready], onceOnly: false) {
            service, connection, requestID, payload throws(BrokerProtocolError) in
            service.startDecrypt(connection, requestID, try DecryptRequest.decode(payload))
        },
    ]

    /// What to do with one packet from the front.
    enum Verdict {
        /// Shape and state are acceptable: run `rule.dispatch` (which still checks the payload).
        case admit(BrokerFrame, DispatchRule)
        /// Close the connection; `type` is the header's type when it could be read.
        case reject(reason: String, type: String)
    }

    /// Checks the header and the connection state before any payload is looked at.
    static func admit(packet: [UInt8], state: FrontState, seen: Set<BrokerMessageType>) -> Verdict {
        let frame: BrokerFrame
        do {
            frame = try BrokerFrame.decode(packet)
        } catch {
            return .reject(reason: error.description, type: packet.count > 3 ? String(packet[3]) : "-")
        }
        let typeName = "\(frame.type)"
        guard frame.type.isRequest else { return .reject(reason: "answer type sent by the front", type: typeName) }
        guard let rule = rules[frame.type] else { return .reject(reason: "request type not allowed", type: typeName) }
        guard rule.allowedStates.contains(state) else {
            return .reject(reason: "request not allowed in state \(state)", type: typeName)
        }
        guard !(rule.onceOnly && seen.contains(frame.type)) else {
            return .reject(reason: "request allowed only once per connection", type: typeName)
        }
        return .admit(frame, rule)
    }
}
