import Broker
import KMSRuntime

/// Keeps systemd's `STATUS=` line equal to the broker's health: checked once a second on the
/// loop, sent only when it changes ("serving <socket>", or the unhealthy reason).
enum HealthStatusReporter {
    static let intervalMillis: Int64 = 1_000

    static func start(
        service: BrokerService, loop: EventLoop, serving: String, status: SystemdStatus = SystemdStatus(),
        frontReady: @escaping () -> Bool = { true }
    ) {
        let reason = service.healthReason
        if reason != "ok" {
            status.report(reason)
        } else if frontReady() {
            status.report("serving \(serving)")
        } else {
            status.report("waiting for the front")
        }
        loop.schedule(afterMillis: intervalMillis) {
            start(service: service, loop: loop, serving: serving, status: status, frontReady: frontReady)
        }
    }
}
