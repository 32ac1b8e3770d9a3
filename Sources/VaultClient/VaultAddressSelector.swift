/// Which of several Vault addresses the broker uses (`--vault-address a,b,c`). Pure state with
/// the clock passed in, so tests drive it with a fake one; `FailoverTransport` owns one.
///
/// Rules:
/// - every call goes to `current`; the first address (index 0) is the preferred one;
/// - a call whose answer says "this address cannot serve" (`FailoverTransport.shouldFailOver`)
///   reports `failed(index:now:)` and is sent once more, to the index it returns; nothing else
///   retries, so one failing address costs each call at most one extra request;
/// - only a failure of the address currently in use moves `current` (the calls that were in
///   flight to it when it failed do not move it again): to the next address in list order that
///   has not failed within `cooldownMillis`; when all did, `current` stays and the retry goes to
///   the next address, and the first address that serves a call becomes `current`;
/// - while `current` is not the preferred address, `shouldRecheckPreferred(now:)` says, once per
///   `recheckIntervalMillis`, to ask the preferred one whether it can serve again; when it can,
///   `preferredRecovered()` moves back.
public struct VaultAddressSelector: Equatable, Sendable {
    /// The first configured address is the one the broker prefers and returns to.
    public static let preferredIndex = 0

    public let count: Int
    public let recheckIntervalMillis: Int64
    public let cooldownMillis: Int64
    /// The index every new call uses.
    public private(set) var current = VaultAddressSelector.preferredIndex
    /// Times `current` moved away after a failure (not counting returns to the preferred address).
    public private(set) var failovers: UInt64 = 0
    /// Returns to the preferred address.
    public private(set) var returns: UInt64 = 0
    private var failedAtMillis: [Int64?]
    private var lastRecheckMillis: Int64?

    public init(count: Int, recheckIntervalMillis: Int64 = 5_000, cooldownMillis: Int64 = 5_000) {
        precondition(count >= 1, "at least one Vault address")
        self.count = count
        self.recheckIntervalMillis = recheckIntervalMillis
        self.cooldownMillis = cooldownMillis
        failedAtMillis = Array(repeating: nil, count: count)
    }

    /// A call sent to `index` could not be served there. Returns where to send it once more,
    /// or nil when there is no other address. When every other address failed within the
    /// cooldown too (the whole cluster is down), the retry still goes to the next one but the
    /// selection stays: no flapping, no log line per failed call.
    public mutating func failed(index: Int, now: Int64) -> Int? {
        guard count > 1, (0..<count).contains(index) else { return nil }
        failedAtMillis[index] = now
        if index == current, let candidate = healthyCandidate(after: index, now: now) {
            current = candidate
            failovers += 1
        }
        return current != index ? current : (index + 1) % count
    }

    /// A call sent to `index` was served there. If the address in use is failing and another one
    /// served (the retry of a call while the whole cluster was failing), that one is used next.
    public mutating func succeeded(index: Int) {
        guard (0..<count).contains(index) else { return }
        failedAtMillis[index] = nil
        if index != current, failedAtMillis[current] != nil {
            current = index
            failovers += 1
        }
    }

    /// True (once per interval) when the broker should ask the preferred address whether it can
    /// serve again; false while the preferred address is in use.
    public mutating func shouldRecheckPreferred(now: Int64) -> Bool {
        guard current != Self.preferredIndex else {
            lastRecheckMillis = nil
            return false
        }
        if let last = lastRecheckMillis, now - last < recheckIntervalMillis { return false }
        lastRecheckMillis = now
        return true
    }

    /// The preferred address answered that it can serve: use it again.
    public mutating func preferredRecovered() {
        failedAtMillis[Self.preferredIndex] = nil
        guard current != Self.preferredIndex else { return }
        current = Self.preferredIndex
        returns += 1
        lastRecheckMillis = nil
    }

    /// The next index after `index` (in list order, wrapping) that has not failed within the
    /// cooldown; nil when every other address failed recently.
    private func healthyCandidate(after index: Int, now: Int64) -> Int? {
        for step in 1..<count {
            let candidate = (index + step) % count
            guard let failedAt = failedAtMillis[candidate] else { return candidate }
            if now - failedAt >= cooldownMillis { return candidate }
        }
        return nil
    }

    /// The time a call may spend on its first address: everything when there is no other one;
    /// else half of `timeoutMillis` (at least `minimumAttemptMillis`), so that an address that
    /// hangs (a frozen process, a black-holed network) leaves the other half for the failover.
    public static func firstAttemptMillis(timeoutMillis: Int, addressCount: Int, minimumAttemptMillis: Int = 100)
        -> Int
    {
        guard addressCount > 1 else { return timeoutMillis }
        return min(timeoutMillis, max(timeoutMillis / 2, minimumAttemptMillis))
    }
}
