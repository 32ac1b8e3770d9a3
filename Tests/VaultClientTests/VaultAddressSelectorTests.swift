import Testing

@testable import VaultClient

/// The address-selection rules of `--vault-address a,b,c`, on a virtual clock (milliseconds
/// passed in): where a call goes, where it goes after a failure, when the preferred address is
/// asked again, and how the deadline is split between two attempts.
struct VaultAddressSelectorTests {
    @Test func oneAddressNeverFailsOver() {
        var selector = VaultAddressSelector(count: 1)
        let answer1 = selector.failed(index: 0, now: 0)
        #expect(answer1 == nil)
        #expect(selector.current == 0)
        #expect(selector.failovers == 0)
        let answer10 = selector.shouldRecheckPreferred(now: 1_000_000)
        #expect(!answer10)
    }

    @Test func aFailureOfTheAddressInUseMovesToTheNextAndRetriesThere() {
        var selector = VaultAddressSelector(count: 3)
        #expect(selector.current == 0)
        let answer2 = selector.failed(index: 0, now: 100)
        #expect(answer2 == 1)
        #expect(selector.current == 1)
        #expect(selector.failovers == 1)
    }

    @Test func callsThatWereInFlightToTheOldAddressDoNotMoveItAgain() {
        // Eight calls were sent to address 0 when it died: the first failure moves to 1, the
        // seven others are retried at 1 and leave the selection alone (no cascade to 2).
        var selector = VaultAddressSelector(count: 3)
        var retries: [Int?] = []
        for call in 0..<8 { retries.append(selector.failed(index: 0, now: 100 + Int64(call))) }
        #expect(retries == Array(repeating: 1, count: 8))
        #expect(selector.current == 1)
        #expect(selector.failovers == 1)
    }

    @Test func addressesThatFailedRecentlyAreSkipped() {
        var selector = VaultAddressSelector(count: 3, recheckIntervalMillis: 5_000, cooldownMillis: 5_000)
        let answer3 = selector.failed(index: 0, now: 0)
        #expect(answer3 == 1)
        #expect(selector.failed(index: 1, now: 100) == 2)  // 0 failed 100 ms ago: skipped
        #expect(selector.current == 2)
        // A late call to 0 fails at 5000 (0 is cooling again); 1's failure is 5.1 s old.
        let answer4 = selector.failed(index: 0, now: 5_000)
        #expect(answer4 == 2)
        #expect(selector.current == 2)
        #expect(selector.failed(index: 2, now: 5_200) == 1)  // next in order is 0, cooling: 1
        #expect(selector.current == 1)
        #expect(selector.failovers == 3)
    }

    @Test func whenEveryAddressFailedRecentlyTheRetryRotatesButTheSelectionStays() {
        // The whole cluster restarts: each failing call is retried once on the next address, but
        // the selection does not flap (one move, one log line, not one per call).
        var selector = VaultAddressSelector(count: 3, cooldownMillis: 60_000)
        _ = selector.failed(index: 0, now: 0)
        _ = selector.failed(index: 1, now: 10)
        #expect(selector.current == 2)
        let retry = selector.failed(index: 2, now: 20)
        #expect(retry == 0)
        #expect(selector.current == 2)
        #expect(selector.failovers == 2)
        // The retry at 0 is served: 0 becomes the address in use.
        selector.succeeded(index: 0)
        #expect(selector.current == 0)
        #expect(selector.failovers == 3)
    }

    @Test func aSuccessElsewhereWhileTheCurrentAddressWorksDoesNotMoveIt() {
        var selector = VaultAddressSelector(count: 3)
        selector.succeeded(index: 2)
        #expect(selector.current == 0)
    }

    @Test func aSuccessClearsTheCooldownOfThatAddress() {
        var selector = VaultAddressSelector(count: 3, cooldownMillis: 60_000)
        _ = selector.failed(index: 0, now: 0)  // -> 1
        _ = selector.failed(index: 1, now: 10)  // -> 2 (0 cooling)
        selector.succeeded(index: 1)
        #expect(selector.failed(index: 2, now: 20) == 1)  // 0 still cooling, 1 cleared
    }

    @Test func thePreferredAddressIsAskedAgainOncePerInterval() {
        var selector = VaultAddressSelector(count: 2, recheckIntervalMillis: 5_000)
        let inUse = selector.shouldRecheckPreferred(now: 0)
        #expect(!inUse)  // in use: nothing to ask
        _ = selector.failed(index: 0, now: 0)
        let answer6 = selector.shouldRecheckPreferred(now: 1_000)
        #expect(answer6)
        let answer11 = selector.shouldRecheckPreferred(now: 2_000)
        #expect(!answer11)
        let answer12 = selector.shouldRecheckPreferred(now: 5_999)
        #expect(!answer12)
        let answer7 = selector.shouldRecheckPreferred(now: 6_000)
        #expect(answer7)
        selector.preferredRecovered()
        #expect(selector.current == 0)
        #expect(selector.returns == 1)
        let answer13 = selector.shouldRecheckPreferred(now: 20_000)
        #expect(!answer13)
    }

    @Test func aRecoveredPreferredAddressIsTriedFirstEvenInsideItsCooldown() {
        var selector = VaultAddressSelector(count: 3, cooldownMillis: 60_000)
        _ = selector.failed(index: 0, now: 0)
        selector.preferredRecovered()
        #expect(selector.current == 0)
        let answer8 = selector.failed(index: 0, now: 100)
        #expect(answer8 == 1)
    }

    @Test func aFailureReportedForAnIndexOutOfRangeChangesNothing() {
        var selector = VaultAddressSelector(count: 2)
        let answer9 = selector.failed(index: 5, now: 0)
        #expect(answer9 == nil)
        #expect(selector.current == 0)
    }

    @Test func theFirstAttemptGetsHalfTheTimeWhenThereIsAnotherAddress() {
        #expect(VaultAddressSelector.firstAttemptMillis(timeoutMillis: 3_000, addressCount: 1) == 3_000)
        #expect(VaultAddressSelector.firstAttemptMillis(timeoutMillis: 3_000, addressCount: 3) == 1_500)
        // Never below the minimum, never above the whole timeout.
        #expect(VaultAddressSelector.firstAttemptMillis(timeoutMillis: 120, addressCount: 3) == 100)
        #expect(VaultAddressSelector.firstAttemptMillis(timeoutMillis: 60, addressCount: 3) == 60)
    }
}
