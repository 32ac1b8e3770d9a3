import Testing

@testable import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// `SocketDirectory`: OpenSSH's safe_path over the socket directory and every ancestor, and the
/// one Pod-volume exception, which must not loosen the rule anywhere else.
struct SocketDirectoryTests {
    typealias Entry = SocketDirectory.Entry
    static let us: uid_t = 1000

    static func entry(
        _ path: String, _ mode: mode_t, owner: uid_t = 0, mount: SocketDirectory.Mount? = nil
    ) -> Entry {
        Entry(path: path, mode: S_IFDIR | mode, owner: owner, mount: mount)
    }

    /// `/run/kms` (the socket directory) under root-owned 0755 `/run` and `/`.
    static func chain(_ directory: Entry, parent: Entry = entry("/run", 0o755)) -> [Entry] {
        [directory, parent, entry("/", 0o755)]
    }

    static func verdict(_ chain: [Entry]) throws(ConfigurationError) -> SocketDirectory.Verdict {
        try SocketDirectory.evaluate(chain, ourUID: us)
    }

    static func refusal(_ chain: [Entry]) -> String? {
        do {
            _ = try verdict(chain)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func aDirectoryOnlyRootOrWeCanWriteIsPrivate() throws {
        #expect(try Self.verdict(Self.chain(Self.entry("/run/kms", 0o755))) == .privateDirectory)
        #expect(try Self.verdict(Self.chain(Self.entry("/run/kms", 0o700, owner: Self.us))) == .privateDirectory)
        #expect(try Self.verdict(Self.chain(Self.entry("/run/kms", 0o750))) == .privateDirectory)
    }

    @Test func aSocketDirectoryOwnedBySomeoneElseIsRefusedWhateverItsMode() {
        let refusal = Self.refusal(Self.chain(Self.entry("/run/kms", 0o700, owner: 4242)))
        #expect(refusal?.contains("socket directory /run/kms is owned by uid 4242") == true)
    }

    @Test func aSocketDirectoryWritableByGroupOrOthersIsRefused() {
        for mode: mode_t in [0o775, 0o757, 0o770, 0o777] {
            #expect(
                Self.refusal(Self.chain(Self.entry("/run/kms", mode)))?.contains("writable by group or others") == true)
        }
    }

    @Test func theStickyExceptionIsGoneForTheSocketsOwnDirectory() {
        // A socket directly in /tmp: anyone can bind the name before we do.
        let refusal = Self.refusal([Self.entry("/tmp", 0o1777), Self.entry("/", 0o755)])
        #expect(refusal?.contains("socket directory /tmp (mode 1777) is writable by group or others") == true)
    }

    @Test func aStickyRootOwnedAncestorIsAccepted() throws {
        // /tmp/vkk-XXXX/kms.sock: others cannot rename our directory out of /tmp.
        let chain = [Self.entry("/tmp/vkk", 0o700, owner: Self.us), Self.entry("/tmp", 0o1777), Self.entry("/", 0o755)]
        #expect(try Self.verdict(chain) == .privateDirectory)
    }

    @Test func anAncestorOthersCouldSwapIsRefused() {
        let directory = Self.entry("/srv/x/kms", 0o755)
        for ancestor in [
            Self.entry("/srv/x", 0o775), Self.entry("/srv/x", 0o777), Self.entry("/srv/x", 0o1777, owner: 4242),
            Self.entry("/srv/x", 0o1777, owner: Self.us),
        ] {
            #expect(Self.refusal(Self.chain(directory, parent: ancestor))?.contains("/srv/x") == true, "\(ancestor)")
        }
    }

    @Test func anAncestorOwnedBySomeoneElseIsRefused() {
        let refusal = Self.refusal(
            Self.chain(
                Self.entry("/home/u/kms", 0o700, owner: Self.us),
                parent: Self.entry("/home/u", 0o755, owner: 4242)))
        #expect(refusal?.contains("ancestor /home/u is owned by uid 4242") == true)
    }

    static let tmpfsRoot = SocketDirectory.Mount(root: "/", fileSystemType: "tmpfs")
    static let kubeletBind = SocketDirectory.Mount(
        root:
            "/var/lib/kubelet/pods/3f1c9a2e-1111-4e2b-9c55-0a1b2c3d4e5f/volumes/kubernetes.io~empty-dir/kms-plugin-socket",
        fileSystemType: "xfs")

    @Test func aPodEmptyDirIsAcceptedAsAPodVolume() throws {
        for (mode, mount) in [(mode_t(0o777), Self.kubeletBind), (0o2777, Self.kubeletBind)] {
            let verdict = try Self.verdict(Self.chain(Self.entry("/var/run/kmsplugin", mode, mount: mount)))
            guard case .podVolume = verdict else {
                Issue.record("mode \(String(mode, radix: 8)) \(mount): \(verdict)")
                continue
            }
        }
    }

    @Test func worldWritableDirectoriesThatAreNotAPodEmptyDirStayRefused() {
        let cases: [(String, Entry)] = [
            ("inside a shared filesystem, not a mount of its own", Self.entry("/var/run/kmsplugin", 0o777)),
            ("a sticky tmpfs (a tmpfs /tmp or /dev/shm)", Self.entry("/tmp", 0o1777, mount: Self.tmpfsRoot)),
            (
                "a medium Memory emptyDir: a fresh 1777 tmpfs, like a host's tmpfs /tmp",
                Self.entry("/var/run/kmsplugin", 0o1777, mount: Self.tmpfsRoot)
            ),
            ("a tmpfs mounted 0777", Self.entry("/var/run/kmsplugin", 0o777, mount: Self.tmpfsRoot)),
            (
                "the kubelet's emptyDir made sticky", Self.entry("/var/run/kmsplugin", 0o1777, mount: Self.kubeletBind)
            ),
            (
                "a whole non-tmpfs filesystem",
                Self.entry("/mnt/x", 0o777, mount: .init(root: "/", fileSystemType: "ext4"))
            ),
            (
                "a bind mount of a host directory",
                Self.entry("/var/run/kmsplugin", 0o777, mount: .init(root: "/srv/shared", fileSystemType: "ext4"))
            ),
            (
                "a bind mount of host /tmp",
                Self.entry("/var/run/kmsplugin", 0o1777, mount: .init(root: "/tmp", fileSystemType: "ext4"))
            ),
            ("not owned by root", Self.entry("/var/run/kmsplugin", 0o777, owner: 4242, mount: Self.kubeletBind)),
            (
                "group-writable only, not the kubelet's 0777",
                Self.entry("/var/run/kmsplugin", 0o775, mount: Self.kubeletBind)
            ),
        ]
        for (what, directory) in cases {
            #expect(Self.refusal(Self.chain(directory)) != nil, "\(what)")
        }
    }

    @Test func thePodVolumeExceptionNeverExcusesAnAncestor() {
        let pod = Self.entry("/x/kmsplugin", 0o777, mount: Self.kubeletBind)
        #expect(Self.refusal(Self.chain(pod, parent: Self.entry("/x", 0o777)))?.contains("ancestor /x") == true)
        #expect(
            Self.refusal(Self.chain(pod, parent: Self.entry("/x", 0o755, owner: 4242)))?.contains("ancestor /x") == true
        )
    }

    @Test func kubeletEmptyDirPathsAreRecognisedExactly() {
        #expect(SocketDirectory.isKubeletEmptyDir(Self.kubeletBind.root))
        #expect(SocketDirectory.isKubeletEmptyDir("/pods/u/volumes/kubernetes.io~empty-dir/s"))
        #expect(!SocketDirectory.isKubeletEmptyDir("/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/"))
        #expect(!SocketDirectory.isKubeletEmptyDir("/var/lib/kubelet/pods/u/volumes/kubernetes.io~host-path/s"))
        #expect(!SocketDirectory.isKubeletEmptyDir("/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/s/sub"))
        #expect(!SocketDirectory.isKubeletEmptyDir("/tmp"))
    }

    @Test func mountinfoLinesAreParsedWithTheirEscapes() throws {
        let line = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
        let (point, mount) = try #require(MountTable.parse(line))
        #expect(point == "/mnt two")
        #expect(mount == SocketDirectory.Mount(root: "/mnt1", fileSystemType: "ext3"))
        let noOptional = "25 1 0:22 / /dev/shm rw,nosuid - tmpfs tmpfs rw"
        #expect(MountTable.parse(noOptional)?.1 == SocketDirectory.Mount(root: "/", fileSystemType: "tmpfs"))
        #expect(MountTable.parse("garbage") == nil)
    }

    @Test func theLiveCheckWalksTheRealFileSystem() throws {
        var template = Array("/tmp/vkk-sd-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
        defer { rmdir(dir) }
        // mkdtemp made it 0700 and ours; /tmp above it is root's and sticky.
        #expect(try SocketDirectory.check(socketPath: dir + "/kms.sock") == .privateDirectory)
        chmod(dir, 0o777)
        #expect(throws: ConfigurationError.self) { try SocketDirectory.check(socketPath: dir + "/kms.sock") }
        #expect(throws: ConfigurationError.self) { try SocketDirectory.check(socketPath: "/tmp/kms.sock") }
        #expect(throws: ConfigurationError.self) { try SocketDirectory.check(socketPath: dir + "/missing/kms.sock") }
    }

    @Test func parentDirectories() {
        #expect(SocketDirectory.parentDirectory(of: "/run/kms/kms.sock") == "/run/kms")
        #expect(SocketDirectory.parentDirectory(of: "/kms.sock") == "/")
    }
}
