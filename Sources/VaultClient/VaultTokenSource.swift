import KMSRuntime

/// Where `TransitClient` gets its token: the broker's `TokenLifecycle` (renewing, re-logging in),
/// or a `StaticTokenSource` for one-shot tools.
public protocol VaultTokenSource: AnyObject {
    /// The token to send, unless none is usable now.
    var currentToken: SecretBytes? { get }
    /// A call was refused with "invalid token" using `stale`: get a new one if possible, then
    /// report (on the event loop, never synchronously) whether a new token is available.
    func replaceInvalidToken(_ stale: SecretBytes, completion: @escaping (Bool) -> Void)
    /// A call was refused with a bare 403 "permission denied", which is how OpenBao answers a
    /// revoked or expired token (Vault adds "invalid token"): reports (on the event loop) whether
    /// `token` is still alive. A source that cannot tell says alive (the 403 stands).
    func tokenIsAlive(_ token: SecretBytes, completion: @escaping (Bool) -> Void)
}

/// A token obtained once (e.g. by one AppRole login in `preflight`); never replaced.
public final class StaticTokenSource: VaultTokenSource {
    private let loop: EventLoop
    public private(set) var currentToken: SecretBytes?

    public init(token: SecretBytes?, loop: EventLoop) {
        self.currentToken = token
        self.loop = loop
    }

    public func replaceInvalidToken(_ stale: SecretBytes, completion: @escaping (Bool) -> Void) {
        loop.schedule(afterMillis: 0) { completion(false) }
    }

    public func tokenIsAlive(_ token: SecretBytes, completion: @escaping (Bool) -> Void) {
        loop.schedule(afterMillis: 0) { completion(true) }
    }
}
