/// How the broker sends HTTP requests to Vault. The production implementation is libcurl's multi
/// interface driven by the broker's event loop (`CurlMultiTransport`); tests script a fake.
///
/// Contract: `send` never calls `completion` synchronously; it is called exactly once, on the
/// event loop, unless `cancelAll` was called, which completes every pending request with
/// `.cancelled` before it returns.
public protocol VaultTransport: AnyObject {
    /// Sends `request`; `completion` runs once, later, on the event loop.
    func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void)
    /// Requests sent and not yet completed.
    var inFlightCount: Int { get }
    /// Aborts every pending request (completing each with `.cancelled`) and releases connections.
    func cancelAll()
    /// True when `send` itself sends a failed request once more, to another Vault address (a
    /// `FailoverTransport` with several addresses). Callers then do not retry on top of it: that
    /// one resend is the whole retry budget of a call.
    var failsOverToAnotherAddress: Bool { get }
}

extension VaultTransport {
    public var failsOverToAnotherAddress: Bool { false }
}
