import ArgumentParser
import Broker
import KMSRuntime
import Preflight
import VaultClient

/// `vault-kube-kms preflight`: checks the node's files, Vault, the AppRole token, its policy and
/// the key with the broker's own flags, then prints `PASS|WARN|FAIL  <check>  <detail>` per line.
/// Exit status 0 when every check passed, 1 when some warned, 2 when any failed (a flag error
/// counts as a failure).
struct PreflightCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preflight",
        abstract: "Check files, Vault, token, policy and key against the best practices (exit 0/1/2).")

    @Option(help: "KMS socket the broker will listen on; its directory is checked (unix:///path).")
    var listenAddress: String?
    @OptionGroup var vault: VaultOptions

    func run() throws {
        let report: PreflightReport
        do {
            // The preflight reads the secret ID and holds a token too.
            try CoreDumps.disableDumping()
            let configuration = try vault.configuration()
            let address = try Flags.resolve(listenAddress, "listen-address").map(ListenAddress.init(parsing:))
            BrokerProcess.scrubEnvironment(logger: nil)
            report = try Preflight(configuration: configuration, listenAddress: address).run()
        } catch {
            print("FAIL  configuration  \(error.description)")
            throw ExitCode(2)
        }
        for result in report.results { print(result.line) }
        throw ExitCode(report.exitCode)
    }
}
