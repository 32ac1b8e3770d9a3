import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// Who may use the KMS socket, checked with `SO_PEERCRED` on every accepted connection when
/// `--allowed-client-uid`/`--allowed-client-gid` are given (both must match when both are): the
/// apiserver's uid or gid. root and the front's own uid are always admitted: root can read
/// everything anyway, and a process of the front's uid can already act as the front (the exec
/// probe `vault-kube-kms probe` runs as that user in the shipped Pods).
public struct ClientPeerPolicy: Equatable, Sendable {
    public var uid: uid_t?
    public var gid: gid_t?

    public init(uid: uid_t?, gid: gid_t?) {
        self.uid = uid
        self.gid = gid
    }

    func admits(uid peerUID: uid_t, gid peerGID: gid_t, ownUID: uid_t = geteuid()) -> Bool {
        if peerUID == 0 || peerUID == ownUID { return true }
        guard uid != nil || gid != nil else { return false }
        if let uid, uid != peerUID { return false }
        if let gid, gid != peerGID { return false }
        return true
    }
}

extension FrontConfiguration {
    /// Applies `--allowed-client-uid`, `--allowed-client-gid` and
    /// `--insecure-abstract-listen-address`. An abstract KMS socket (`unix:///@name`) has no file
    /// permissions: any local user could call Decrypt on stolen ciphertexts. It is refused unless
    /// client ids restrict it, or the development flag is given.
    public mutating func applyClientPeer(
        allowedClientUID: String?, allowedClientGID: String?, insecureAbstractListenAddress: Bool,
        environment: (String) -> String? = EnvironmentFallback.value
    ) throws(ConfigurationError) {
        func number(_ value: String?, _ flag: String) throws(ConfigurationError) -> UInt32? {
            guard let text = value ?? environment(EnvironmentFallback.variableName(forFlag: flag)) else { return nil }
            guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let parsed = UInt32(text), parsed != UInt32.max
            else { throw ConfigurationError("--\(flag) must be a number") }
            return parsed
        }
        let uid = try number(allowedClientUID, "allowed-client-uid")
        let gid = try number(allowedClientGID, "allowed-client-gid")
        clientPeer = uid == nil && gid == nil ? nil : ClientPeerPolicy(uid: uid, gid: gid)
        let variable = environment(EnvironmentFallback.variableName(forFlag: "insecure-abstract-listen-address"))
        let insecure = insecureAbstractListenAddress || ["1", "true", "yes"].contains(variable?.lowercased() ?? "")
        if case .address(.abstract(let name)) = listen, clientPeer == nil, !insecure {
            throw ConfigurationError(Self.abstractListenRefusal(name))
        }
    }

    public static func abstractListenRefusal(_ name: String) -> String {
        "abstract KMS socket unix:///@\(name) is refused: it has no file permissions, so any local user could "
            + "call Decrypt; use a socket path, or restrict it with --allowed-client-uid/--allowed-client-gid "
            + "(--insecure-abstract-listen-address allows it for development)"
    }
}
