import KMSCore

/// The state of one front connection: a small state machine, not a set of flags.
enum FrontState: Hashable, Sendable {
    /// Connected; only HELLO is allowed.
    case awaitingHello
    /// HELLO done; STATUS, ENCRYPT, DECRYPT, METRICS and HEARTBEAT are allowed.
    case ready
}

/// One row of the permit table: in which states a request type is allowed and whether it may come
/// only once per connection. The payload's shape is broker protocol v1's (`BrokerRequest.decode`,
/// KMSCore); its meaning is the handler's (`BrokerService.handle`).
struct DispatchRule: Sendable {
    let allowedStates: Set<FrontState>
    let onceOnly: Bool
}

/// The broker denies by default: a request type that is not in this table (answer types,
/// anything unknown) closes the connection. There is no `default:` anywhere on this path.
enum DispatchTable {
    static let rules: [BrokerMessageType: DispatchRule] = [
        .helloRequest: DispatchRule(allowedStates: [.awaitingHello], onceOnly: true),
        .statusRequest: DispatchRule(allowedStates: [.ready], onceOnly: false),
        .heartbeatRequest: DispatchRule(allowedStates: [.ready], onceOnly: false),
        .metricsRequest: DispatchRule(allowedStates: [.ready], onceOnly: false),
        .encryptRequest: DispatchRule(allowedStates: [.ready], onceOnly: false),
        .decryptRequest: DispatchRule(allowedStates: [.ready], onceOnly: false),
    ]

    /// What to do with one packet from the front.
    enum Verdict {
        /// Header, state and payload are acceptable: hand `request` to the service.
        case admit(requestID: UInt32, request: BrokerRequest, rule: DispatchRule)
        /// Close the connection; `type` is the header's type when it could be read.
        case reject(reason: String, type: String)
    }

    /// Checks the header and the connection state before any payload is looked at, then decodes
    /// the payload exactly (`BrokerRequest.decode`).
    static func admit(packet: [UInt8], state: FrontState, seen: Set<BrokerMessageType>) -> Verdict {
        let frame: BrokerFrame
        do {
            frame = try BrokerFrame.decode(packet)
        } catch {
            return .reject(reason: error.description, type: packet.count > 3 ? String(packet[3]) : "-")
        }
        // Formatted only when a packet is refused: interpolating it for every admitted packet
        // cost ~6.8 k instructions per call (callgrind, p17vault).
        var typeName: String { "\(frame.type)" }
        guard frame.type.isRequest else { return .reject(reason: "answer type sent by the front", type: typeName) }
        guard let rule = rules[frame.type] else { return .reject(reason: "request type not allowed", type: typeName) }
        guard rule.allowedStates.contains(state) else {
            return .reject(reason: "request not allowed in state \(state)", type: typeName)
        }
        guard !(rule.onceOnly && seen.contains(frame.type)) else {
            return .reject(reason: "request allowed only once per connection", type: typeName)
        }
        do throws(BrokerProtocolError) {
            return .admit(requestID: frame.requestID, request: try BrokerRequest.decode(frame), rule: rule)
        } catch {
            return .reject(reason: error.description, type: typeName)
        }
    }
}
