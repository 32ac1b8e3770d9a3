import Testing

@testable import VaultClient

/// The login backoff never lets a simulated fleet of failing logins reach Vault's AppRole lockout
/// (5 failures within 15 minutes), whatever the jitter does. Pure arithmetic on a virtual clock.
struct LoginBackoffTests {
    /// Runs `count` consecutive credential failures, each attempt made as soon as allowed, and
    /// returns the attempt times.
    static func attempts(count: Int, jitter: @escaping (Int64) -> Int64) -> [Int64] {
        var backoff = LoginBackoff()
        var now: Int64 = 0
        var times: [Int64] = []
        for _ in 0..<count {
            times.append(now)
            now += backoff.failed(.credentials, now: now, jitter: jitter)
        }
        return times
    }

    static func maxFailuresInAnyWindow(_ times: [Int64], window: Int64 = 15 * 60_000) -> Int {
        times.indices.map { start in times[start...].prefix { $0 - times[start] < window }.count }.max() ?? 0
    }

    @Test(arguments: [0.0, 0.5, 1.0])
    func credentialFailuresNeverReachFiveWithinFifteenMinutes(jitterPosition: Double) {
        // Jitter at its lowest, middle and highest: the lockout bound holds after jitter.
        let jitter: (Int64) -> Int64 = { delay in delay - delay / 5 + Int64(Double(delay / 5 * 2) * jitterPosition) }
        let times = Self.attempts(count: 40, jitter: jitter)
        #expect(Self.maxFailuresInAnyWindow(times) <= 4)
    }

    @Test func afterThreeRefusalsOfTheSameFileTheNextWaitsAQuietWindowAfterTheLast() {
        var backoff = LoginBackoff()
        var now: Int64 = 0
        var delay: Int64 = 0
        for _ in 0..<3 {
            delay = backoff.failed(.credentials, now: now) { $0 }
            now += delay
        }
        #expect(delay >= LoginBackoff.lockoutWindowMillis)
        #expect(LoginBackoff.lockoutWindowMillis > 15 * 60_000)
    }

    @Test func theLastSlotOfTheLockoutBudgetIsKeptForAChangedFile() {
        var backoff = LoginBackoff()
        var now: Int64 = 0
        for _ in 0..<3 { now += backoff.failed(.credentials, now: now) { $0 } }
        let last = backoff.lastCredentialFailure ?? -1
        #expect(backoff.earliestAllowed(now: last + 1000) == last + LoginBackoff.lockoutWindowMillis)
        #expect(backoff.earliestAllowed(now: last + 1000, changedFile: true) == last + 1000)
        // The changed file was refused too: now the budget is spent for everything.
        _ = backoff.failed(.credentials, now: last + 1000) { $0 }
        #expect(
            backoff.earliestAllowed(now: last + 2000, changedFile: true)
                == last + 1000 + LoginBackoff.lockoutWindowMillis)
    }

    @Test func aRefusedSecretIDIsNeverRetriedSoonerThanItsBackoffButAChangedFileIs() {
        var backoff = LoginBackoff()
        #expect(backoff.failed(.credentials, now: 0) { $0 } == 30_000)
        #expect(backoff.earliestAllowed(now: 100) == 30_000)
        #expect(backoff.earliestAllowed(now: 100, changedFile: true) == 100)
        backoff.secretIDChanged()
        #expect(backoff.earliestAllowed(now: 100) == 100)
    }

    @Test func refusalsSpacedByTheBackoffNeverShrink() {
        var backoff = LoginBackoff()
        var now: Int64 = 0
        var delays: [Int64] = []
        for _ in 0..<3 {
            let delay = backoff.failed(.credentials, now: now) { $0 - $0 / 5 }
            delays.append(delay)
            now += delay
        }
        #expect(delays == delays.sorted() && delays[0] >= 24_000, "\(delays)")
    }

    @Test(arguments: [0.0, 1.0])
    func changedFilesAtEveryChanceStillNeverReachFiveWithinFifteenMinutes(jitterPosition: Double) {
        // A new (but also refused) file appears every 10 s; each is tried as soon as allowed.
        let jitter: (Int64) -> Int64 = { delay in delay - delay / 5 + Int64(Double(delay / 5 * 2) * jitterPosition) }
        var backoff = LoginBackoff()
        var now: Int64 = 0
        var times: [Int64] = []
        var nextAttempt: Int64 = 0
        while now < 3 * 3_600_000 {
            if now >= nextAttempt || backoff.earliestAllowed(now: now, changedFile: true) <= now {
                times.append(now)
                nextAttempt = now + backoff.failed(.credentials, now: now, jitter: jitter)
            }
            now += 10_000
        }
        #expect(Self.maxFailuresInAnyWindow(times) <= 4)
        #expect(times.count >= 12)
    }

    @Test func credentialBackoffDoublesFromThirtySeconds() {
        var backoff = LoginBackoff()
        #expect(backoff.failed(.credentials, now: 0) { $0 } == 30_000)
        #expect(backoff.failed(.credentials, now: 30_000) { $0 } == 60_000)
        // The third refusal of the same file spends the budget's last slot but one: a window.
        #expect(backoff.failed(.credentials, now: 90_000) { $0 } >= LoginBackoff.lockoutWindowMillis)
    }

    @Test func transientFailuresBackOffFastAndDoNotCountTowardTheLockout() {
        var backoff = LoginBackoff()
        var now: Int64 = 0
        var delays: [Int64] = []
        for _ in 0..<10 {
            let delay = backoff.failed(.transient, now: now) { $0 }
            delays.append(delay)
            now += delay
        }
        #expect(delays.prefix(4) == [1000, 2000, 4000, 8000])
        #expect(delays.max() == LoginBackoff.transientMaxMillis)
        #expect(backoff.credentialStreak == 0)
        #expect(backoff.earliestAllowed(now: now) == now)
    }

    @Test func jitterSpreadsDelaysWithinTwentyPercent() {
        let delays = (0..<200).map { _ in LoginBackoff.randomJitter(10_000) }
        #expect(delays.allSatisfy { (8000...12_000).contains($0) })
        #expect(Set(delays).count > 1)
    }

    @Test func aSuccessResetsTheDelays() {
        var backoff = LoginBackoff()
        _ = backoff.failed(.transient, now: 0) { $0 }
        _ = backoff.failed(.transient, now: 1000) { $0 }
        backoff.succeeded()
        #expect(backoff.failed(.transient, now: 5000) { $0 } == 1000)
    }
}
