/// The operations the broker performs against Vault, named for metric labels. Each request
/// carries its operation (`VaultRequest.operation`), set where the request is built.
public enum VaultOperation: String, CaseIterable, Sendable {
    case login, renew, readKey = "read_key", encrypt, decrypt, license, other
}
