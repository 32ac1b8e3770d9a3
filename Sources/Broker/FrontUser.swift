import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// The account the front runs as (`--front-user`, a name or a numeric uid; default `nobody`).
public struct FrontUser: Equatable, Sendable, CustomStringConvertible {
    public let uid: uid_t
    public let gid: gid_t
    public let name: String

    public init(uid: uid_t, gid: gid_t, name: String) {
        self.uid = uid
        self.gid = gid
        self.name = name
    }

    /// Resolves a user name or uid through NSS. A numeric uid without a passwd entry uses its own
    /// number as gid (as container runtimes do for arbitrary uids).
    public static func resolve(_ spec: String) throws(ConfigurationError) -> FrontUser {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        if let uid = UInt32(spec) {
            if getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, let found = result {
                return FrontUser(
                    uid: found.pointee.pw_uid, gid: found.pointee.pw_gid, name: String(cString: found.pointee.pw_name))
            }
            return FrontUser(uid: uid, gid: uid, name: spec)
        }
        guard getpwnam_r(spec, &entry, &buffer, buffer.count, &result) == 0, let found = result else {
            throw ConfigurationError("front user \(spec.debugDescription) does not exist")
        }
        return FrontUser(
            uid: found.pointee.pw_uid, gid: found.pointee.pw_gid, name: String(cString: found.pointee.pw_name))
    }

    public var description: String { "\(name) (uid \(uid), gid \(gid))" }

    /// The user's groups per NSS (`getgrouplist`: the primary gid and every supplementary group);
    /// just the primary gid for a uid without a passwd entry.
    public func groupIDs() -> [gid_t] {
        var count: Int32 = 64
        for _ in 0..<4 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            let capacity = count
            if getgrouplist(name, gid, &groups, &count) >= 0 { return Array(groups.prefix(Int(count))) }
            if count <= capacity { count = capacity * 4 }
        }
        return [gid]
    }
}

/// Whether the front may be started as `user` by a broker running with `brokerUID`, and how.
public enum FrontPrivilegePlan: Equatable, Sendable {
    /// The broker is privileged: the child switches to the front user and drops everything.
    case switchUser(FrontUser)
    /// Development only (`--insecure-same-user`): the front runs under the broker's own uid.
    case sameUserInsecure
    /// `--one-uid` (a non-root container, a plain user): the front runs under the broker's own
    /// uid and the kernel separates them: the front's sandbox is required (Landlock ABI >= 6 and
    /// seccomp, `--sandbox required`), the broker is non-dumpable with no core dumps.
    case oneUID(uid_t)

    public static func decide(
        user: FrontUser?, brokerEUID: uid_t, insecureSameUser: Bool, oneUID: Bool = false
    ) throws(ConfigurationError) -> FrontPrivilegePlan {
        if oneUID {
            guard brokerEUID != 0 else {
                throw ConfigurationError(
                    "--one-uid would run the front as root; as root the broker starts it as --front-user instead")
            }
            guard !insecureSameUser else {
                throw ConfigurationError("--one-uid and --insecure-same-user are mutually exclusive")
            }
            if let user, user.uid != brokerEUID {
                throw ConfigurationError(
                    "--one-uid runs the front as uid \(brokerEUID); --front-user \(user) contradicts it")
            }
            return .oneUID(brokerEUID)
        }
        // Not root, no other front user asked for, no --insecure-same-user: the broker could not
        // separate uids anyway, so it takes the one-uid topology (sandbox required) rather than
        // stopping (docs/security-model.md, "One uid": OpenShift's non-root sidecars pass no flag).
        if automaticOneUID(user: user, brokerEUID: brokerEUID, insecureSameUser: insecureSameUser) {
            return .oneUID(brokerEUID)
        }
        let user = user ?? FrontUser(uid: 65534, gid: 65534, name: "nobody")
        if brokerEUID == 0 {
            guard user.uid != 0 else { throw ConfigurationError("refusing to run the front as root; set --front-user") }
            // Group root opens whatever is group-readable by root (0640 keys, sockets, /etc files).
            guard user.gid != 0, !user.groupIDs().contains(0) else {
                throw ConfigurationError(
                    "refusing to run the front as \(user): it is in group root (gid 0); choose a user outside group 0")
            }
            return .switchUser(user)
        }
        if user.uid != brokerEUID && !insecureSameUser {
            throw ConfigurationError(
                "the broker runs as uid \(brokerEUID) without the privilege to start the front as \(user); "
                    + "start it as root (it drops to the front user), use the split topology, "
                    + "or drop --front-user (the front then runs at the broker's uid inside its sandbox, the one-uid topology)"
            )
        }
        return .sameUserInsecure
    }

    /// Whether `decide` picks the one-uid topology without `--one-uid`: a non-root broker with no
    /// `--front-user` (or its own uid) and no `--insecure-same-user`.
    public static func automaticOneUID(user: FrontUser?, brokerEUID: uid_t, insecureSameUser: Bool) -> Bool {
        brokerEUID != 0 && !insecureSameUser && (user == nil || user?.uid == brokerEUID)
    }
}
