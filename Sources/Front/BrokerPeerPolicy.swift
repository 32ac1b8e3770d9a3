import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// Who the front accepts as its broker in the split topologies, checked with `SO_PEERCRED` on the
/// connected socket before HELLO (so before any DEK seed is sent): the peer's uid must be
/// `--broker-uid` (default: the owner of the broker socket path, read at each connect) and, when
/// `--broker-gid` is given, its gid must match too. uid 0 is always accepted: root is trusted on
/// the node anyway, and a socket systemd passes (`ListenSequentialPacket=`) reports the
/// credentials of pid 1, which called `listen()`.
public struct BrokerPeerPolicy: Equatable, Sendable {
    public var uid: uid_t?
    public var gid: gid_t?

    public init(uid: uid_t? = nil, gid: gid_t? = nil) {
        self.uid = uid
        self.gid = gid
    }

    /// The uid the broker must have for `address`: the configured one, else the socket's owner.
    func expectedUID(for address: ListenAddress) -> Result<uid_t, ConfigurationError> {
        if let uid { return .success(uid) }
        guard case .path(let path) = address else {
            return .failure(ConfigurationError("--broker-uid is required with an abstract --broker-address"))
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            return .failure(ConfigurationError("cannot inspect broker socket \(path): \(SystemError("stat"))"))
        }
        return .success(info.st_uid)
    }

    /// nil when `peer` may be the broker; else why not (logged, never sent anywhere).
    func refusal(peerUID: uid_t, peerGID: gid_t, expectedUID: uid_t) -> String? {
        if peerUID == 0 { return nil }
        guard peerUID == expectedUID else { return "peer uid \(peerUID) is not the broker's uid \(expectedUID)" }
        if let gid, gid != peerGID { return "peer gid \(peerGID) is not the broker's gid \(gid)" }
        return nil
    }

    /// Parses `--broker-uid`/`--broker-gid` (decimal ids, or their environment variables).
    static func parse(
        uid: String?, gid: String?, environment: (String) -> String?
    ) throws(ConfigurationError) -> BrokerPeerPolicy {
        func number(_ value: String?, _ flag: String) throws(ConfigurationError) -> UInt32? {
            guard let text = value ?? environment(EnvironmentFallback.variableName(forFlag: flag)) else { return nil }
            guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let parsed = UInt32(text), parsed != UInt32.max
            else { throw ConfigurationError("--\(flag) must be a number") }
            return parsed
        }
        return BrokerPeerPolicy(uid: try number(uid, "broker-uid"), gid: try number(gid, "broker-gid"))
    }
}

extension FrontConfiguration {
    /// Applies `--broker-uid`, `--broker-gid` and `--insecure-abstract-broker-address`. An abstract
    /// broker name (`unix:///@name`) is refused without the development flag: any local user can
    /// bind a free abstract name (while the broker restarts, say) and would receive every DEK seed.
    public mutating func applyBrokerPeer(
        brokerUID: String?, brokerGID: String?, insecureAbstractBrokerAddress: Bool,
        environment: (String) -> String? = EnvironmentFallback.value
    ) throws(ConfigurationError) {
        brokerPeer = try BrokerPeerPolicy.parse(uid: brokerUID, gid: brokerGID, environment: environment)
        let variable = environment(EnvironmentFallback.variableName(forFlag: "insecure-abstract-broker-address"))
        let insecure = insecureAbstractBrokerAddress || ["1", "true", "yes"].contains(variable?.lowercased() ?? "")
        guard case .address(.abstract(let name)) = broker else { return }
        guard insecure else {
            throw ConfigurationError(
                "abstract broker address unix:///@\(name) is refused: any local user can bind an abstract name; "
                    + "use a socket path (--insecure-abstract-broker-address allows it for development)")
        }
        guard brokerPeer.uid != nil else {
            throw ConfigurationError("--broker-uid is required with an abstract --broker-address")
        }
    }
}
