import ArgumentParser
import Broker
import KMSRuntime

struct BrokerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault-kube-kms",
        abstract: "Kubernetes KMS v2 plugin backed by Vault Transit: the credential broker.",
        discussion: """
            Every flag can also be set through VAULT_KUBE_KMS_<FLAG> (for example \
            VAULT_KUBE_KMS_VAULT_ADDRESS); a flag on the command line wins.
            """,
        subcommands: [
            ServeCommand.self, BrokerSplitCommand.self, PreflightCommand.self, ProbeCommand.self, RotationCommand.self,
        ],
        defaultSubcommand: ServeCommand.self)
}
