/// When to try the next AppRole login after a failure.
///
/// Vault locks an AppRole role ID out after 5 failed logins within 15 minutes (the defaults of
/// `lockout_threshold`, `lockout_duration` and `lockout_counter_reset`). Failures where Vault
/// judged the credentials (400 invalid secret ID, 403) count toward that; failures where Vault
/// never saw them (unreachable, sealed, 5xx, 429, an unreadable secret-ID file) do not.
///
/// Vault resets its counter only after a quiet `lockout_counter_reset` with no failure, so the
/// budget here is the conservative one: at most `maxCredentialFailures` (4) credential failures
/// with no quiet window between them. The same (refused) secret ID is retried at most
/// `maxCredentialFailures - 1` times in a window, 30 s doubling to 5 min apart and never sooner,
/// whatever else fails in between: the last slot of the budget is kept for a secret-ID file that
/// changed (`earliestAllowed(now:changedFile:)`), which is new information and is tried at once.
/// Once the budget is spent, the next attempt waits a full window (15 min plus a margin for clock
/// skew) after the last failure. Other failures back off from 1 s doubling to 60 s. Every delay
/// gets ±20 % jitter, so that a fleet of brokers does not retry in step; the lockout bound is
/// applied after the jitter.
struct LoginBackoff {
    static let lockoutWindowMillis: Int64 = 15 * 60_000 + 30_000
    static let maxCredentialFailures = 4
    static let transientInitialMillis: Int64 = 1000
    static let transientMaxMillis: Int64 = 60_000
    static let credentialInitialMillis: Int64 = 30_000
    static let credentialMaxMillis: Int64 = 5 * 60_000

    enum Failure {
        /// Vault evaluated the role ID and secret ID and refused them.
        case credentials
        /// Vault did not judge the credentials.
        case transient
    }

    /// Credential failures since the last quiet window, and the time of the last one.
    private(set) var credentialStreak = 0
    private(set) var lastCredentialFailure: Int64?
    /// The earliest time the secret ID that was last refused may be sent again (nil when none
    /// was refused, or the file changed since).
    private(set) var refusedRetryAt: Int64?
    private var transientDelay = LoginBackoff.transientInitialMillis
    private var credentialDelay = LoginBackoff.credentialInitialMillis

    /// Records a failure at `now` and returns the delay before the next attempt with the same
    /// secret-ID file. `jitter` maps a delay to a jittered one (tests pass the identity or an
    /// extreme).
    mutating func failed(
        _ failure: Failure, now: Int64, jitter: (Int64) -> Int64 = LoginBackoff.randomJitter
    ) -> Int64 {
        switch failure {
        case .transient:
            let delay = jitter(transientDelay)
            transientDelay = min(transientDelay * 2, Self.transientMaxMillis)
            return max(delay, earliestAllowed(now: now) - now, 1)
        case .credentials:
            if let last = lastCredentialFailure, now - last >= Self.lockoutWindowMillis { credentialStreak = 0 }
            credentialStreak += 1
            lastCredentialFailure = now
            let delay = jitter(credentialDelay)
            credentialDelay = min(credentialDelay * 2, Self.credentialMaxMillis)
            refusedRetryAt = nil
            let retryAt = max(now + delay, earliestAllowed(now: now), now + 1)
            refusedRetryAt = retryAt
            return retryAt - now
        }
    }

    /// A login succeeded: delays start over (the failure history stays for the window).
    mutating func succeeded() {
        transientDelay = Self.transientInitialMillis
        credentialDelay = Self.credentialInitialMillis
        refusedRetryAt = nil
    }

    /// The secret-ID file now holds something other than the refused secret ID: the refused one's
    /// spacing no longer applies (the lockout budget still does).
    mutating func secretIDChanged() {
        refusedRetryAt = nil
    }

    /// The earliest time a login may be sent: with an unchanged file, not before the refused
    /// secret ID's back-off and not into the last slot of the lockout budget; with a changed file,
    /// as long as one slot of the budget is left.
    func earliestAllowed(now: Int64, changedFile: Bool = false) -> Int64 {
        var earliest = now
        if !changedFile, let retryAt = refusedRetryAt { earliest = max(earliest, retryAt) }
        guard let last = lastCredentialFailure, now - last < Self.lockoutWindowMillis else { return earliest }
        let budget = changedFile ? Self.maxCredentialFailures : Self.maxCredentialFailures - 1
        if credentialStreak >= budget { earliest = max(earliest, last + Self.lockoutWindowMillis) }
        return earliest
    }

    static func randomJitter(_ delay: Int64) -> Int64 {
        delay + Int64.random(in: -(delay / 5)...(delay / 5))
    }
}
