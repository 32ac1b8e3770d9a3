import KMSRuntime
import VaultClient

/// Wraps a transport and counts every call by operation, outcome and duration.
final class InstrumentedTransport: VaultTransport {
    private let inner: any VaultTransport
    private(set) var operations: [VaultOperation: VaultOperationStatistics] = [:]

    init(_ inner: any VaultTransport) { self.inner = inner }

    var inFlightCount: Int { inner.inFlightCount }

    var failsOverToAnotherAddress: Bool { inner.failsOverToAnotherAddress }

    func send(_ request: VaultRequest, completion: @escaping (VaultResponse) -> Void) {
        let operation = request.operation
        let started = EventLoop.nowMillis()
        inner.send(request) { [weak self] response in
            let errorClass = response.failure.map { "\($0.code)" }
            self?.operations[operation, default: VaultOperationStatistics()].record(
                millis: EventLoop.nowMillis() - started, errorClass: errorClass)
            completion(response)
        }
    }

    func cancelAll() { inner.cancelAll() }
}
