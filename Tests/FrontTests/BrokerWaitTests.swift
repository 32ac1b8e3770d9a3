import KMSCore
import KMSRuntime
import Testing

@testable import Front

/// The bounds of waiting for a starting broker (GRPCServer+BrokerWait.swift) and its metrics.
/// The waits themselves run against the real front in Tests/e2e/kms/test_front_broker_wait.py.
struct BrokerWaitTests {
    @Test func retryDelaysDoubleFromTheFirstUpToTheCap() {
        #expect(BrokerWaitQueue.retryDelay(after: 0) == BrokerWaitQueue.firstRetryMillis)
        #expect(BrokerWaitQueue.retryDelay(after: 1) == 2 * BrokerWaitQueue.firstRetryMillis)
        #expect(BrokerWaitQueue.retryDelay(after: 3) == 8 * BrokerWaitQueue.firstRetryMillis)
        #expect(BrokerWaitQueue.retryDelay(after: 60) == BrokerWaitQueue.maxRetryMillis)
    }

    @Test func theStartupWindowClosesAfterItsLengthOrTheFirstServedCall() {
        let queue = BrokerWaitQueue()
        #expect(!queue.inStartupWindow(now: 1_000))  // not ready: no window
        queue.readySinceMillis = 1_000
        #expect(queue.inStartupWindow(now: 1_000 + BrokerWaitQueue.startupWindowMillis - 1))
        #expect(!queue.inStartupWindow(now: 1_000 + BrokerWaitQueue.startupWindowMillis))
        queue.servedSinceReady = true
        #expect(!queue.inStartupWindow(now: 1_001))
    }

    @Test func noMoreCallsWaitThanTheBrokerAcceptsInFlight() {
        #expect(BrokerWaitQueue.maxWaiting == Limits.maxInFlightPerFront)
    }

    @Test func theMetricsPageShowsEveryWaitOutcome() {
        var figures = MetricsFigures(frontVersion: "0.1.0")
        figures.brokerWait = BrokerWaitFigures(waited: 5, served: 3, gaveUp: 1, queueFull: 2, waiting: 1)
        let text = MetricsPage.render(figures)
        #expect(text.contains("vault_kube_kms_broker_wait_calls_total 5\n"))
        #expect(text.contains("vault_kube_kms_broker_wait_outcomes_total{outcome=\"served\"} 3\n"))
        #expect(text.contains("vault_kube_kms_broker_wait_outcomes_total{outcome=\"gave_up\"} 1\n"))
        #expect(text.contains("vault_kube_kms_broker_wait_outcomes_total{outcome=\"queue_full\"} 2\n"))
        #expect(text.contains("vault_kube_kms_broker_waiting_calls 1\n"))
    }
}
