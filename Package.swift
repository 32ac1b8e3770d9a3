// swift-tools-version: 6.2
// vault-kube-kms: a Kubernetes KMS v2 plugin backed by Vault Transit, split into an
// unprivileged gRPC front and a credential broker. The privilege boundary is visible here:
// Front never depends on Broker, VaultClient, Preflight, CCurl or COpenSSL; Broker, VaultClient
// and Preflight never depend on Front, CNGHTTP2 or KMSv2API. Tests/e2e/privsep/test_boundary.py
// checks the sources' imports and what the binaries link.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "vault-kube-kms",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vault-kube-kms", targets: ["vault-kube-kms"]),
        .executable(name: "vault-kube-kms-front", targets: ["vault-kube-kms-front"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // System libraries: module maps and shim headers only.
        .systemLibrary(name: "CNGHTTP2", pkgConfig: "libnghttp2", providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // C where C is required: fork -> drop privileges -> exec (async-signal-safe), pidfd_open.
        .target(name: "CSpawn"),
        // Linux and glibc shims Swift's Glibc module lacks: epoll and signalfd declarations,
        // SO_PEERCRED, prctl(PR_SET_DUMPABLE), the real argv (captured in .init_array).
        .target(name: "CLinux"),
        // C for the front's sandbox: raw landlock_*/seccomp system calls and the BPF allow list.
        .target(name: "CSandbox", exclude: ["front_syscalls.inc"]),

        .target(name: "KMSCore", swiftSettings: strict),
        .target(
            name: "KMSRuntime",
            dependencies: ["KMSCore", "CSystemd", "CLinux", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "KMSv2API",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["api.proto"],
            swiftSettings: strict),
        .target(
            name: "Front",
            dependencies: [
                "KMSCore", "KMSRuntime", "CNGHTTP2", "CSandbox",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The broker's Vault client: libcurl transport, Vault requests and answers, JSON, error
        // classification, AppRole login, Transit, the token lifecycle.
        .target(
            name: "VaultClient",
            dependencies: [
                "KMSCore", "KMSRuntime", "CCurl", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // The broker: protocol server, key cache and probes, dispatcher, front supervisor.
        .target(
            name: "Broker",
            dependencies: [
                "KMSCore", "KMSRuntime", "VaultClient", "COpenSSL", "CSpawn", "CSandbox",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // `vault-kube-kms preflight`: checks of the host, the files and Vault before serving.
        .target(
            name: "Preflight",
            dependencies: ["KMSCore", "KMSRuntime", "VaultClient", "CSandbox"],
            swiftSettings: strict),
        // `vault-kube-kms probe`: a KMS v2 client on libcurl (HTTP/2 prior knowledge over the Unix
        // socket) with a hand-written protobuf codec, so the broker binary links neither the gRPC
        // server nor KMSv2API.
        .target(name: "KMSProbe", dependencies: ["KMSCore", "CCurl"], swiftSettings: strict),
        // What both executables' command lines share on top of ArgumentParser (Go-style flag
        // spellings); KMSRuntime stays free of ArgumentParser.
        .target(
            name: "KMSCommandLine",
            dependencies: ["KMSRuntime", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        .executableTarget(
            name: "vault-kube-kms",
            dependencies: [
                "Broker", "VaultClient", "Preflight", "KMSCore", "KMSRuntime", "KMSCommandLine", "CSpawn", "CSandbox",
                "KMSProbe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "vault-kube-kms-front",
            dependencies: [
                "Front", "KMSRuntime", "KMSCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        .testTarget(name: "KMSCoreTests", dependencies: ["KMSCore"], swiftSettings: strict),
        .testTarget(
            name: "KMSRuntimeTests", dependencies: ["KMSRuntime", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .testTarget(name: "FrontTests", dependencies: ["Front", "KMSv2API"], swiftSettings: strict),
        // Helpers the broker-side test targets share (temporary directories, log capture, loop runs).
        .target(
            name: "KMSTestSupport", dependencies: ["KMSRuntime", .product(name: "Logging", package: "swift-log")],
            path: "Tests/KMSTestSupport", swiftSettings: strict),
        .testTarget(
            name: "VaultClientTests", dependencies: ["VaultClient", "KMSRuntime", "KMSTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "BrokerTests", dependencies: ["Broker", "VaultClient", "KMSTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "PreflightTests", dependencies: ["Preflight", "Broker", "VaultClient"], swiftSettings: strict),
        .testTarget(name: "KMSProbeTests", dependencies: ["KMSProbe", "KMSv2API"], swiftSettings: strict),
        // The two command lines as parsed by the binaries themselves (Go-style spellings, HashiCorp's flags).
        .testTarget(
            name: "CLITests",
            dependencies: ["vault-kube-kms", "vault-kube-kms-front", "Broker", "VaultClient", "Front", "KMSRuntime"],
            swiftSettings: strict),
    ]
)
