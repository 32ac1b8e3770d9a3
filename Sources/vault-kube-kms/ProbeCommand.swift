import ArgumentParser
import KMSProbe
import KMSRuntime

/// `vault-kube-kms probe --listen-address unix:///...`: a KMS v2 client for exec probes
/// (distroless images have no shell or grpcurl). Prints one line per step; exit status 0 only
/// when Status is ok and an Encrypt/Decrypt round trip returns the seed.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Check a running plugin: Status, then an Encrypt/Decrypt round trip over its KMS socket.")

    @Option(help: "The plugin's KMS socket (unix:///path or unix:///@abstract; VAULT_KUBE_KMS_LISTEN_ADDRESS).")
    var listenAddress: String?

    @Option(help: "Timeout of each call in milliseconds (default 3000, kube-apiserver's KMS timeout).")
    var timeoutMillis: Int = 3000

    func run() throws {
        guard let text = Flags.resolve(listenAddress, "listen-address") else {
            throw ValidationError("--listen-address is required")
        }
        guard (1...60_000).contains(timeoutMillis) else { throw ValidationError("--timeout-millis must be 1-60000") }
        let address: ListenAddress
        do {
            address = try ListenAddress(parsing: text)
        } catch {
            throw ValidationError(error.description)
        }
        let socket: GRPCUnixClient.SocketAddress
        switch address {
        case .path(let path): socket = .path(path)
        case .abstract(let name): socket = .abstract(name)
        }
        let probe = KMSProbe(address: socket, timeoutMillis: timeoutMillis)
        let passed = probe.run { step in print(step.line) }
        if !passed { throw ExitCode(1) }
    }
}
