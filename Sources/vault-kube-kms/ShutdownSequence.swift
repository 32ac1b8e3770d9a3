import Broker
import KMSRuntime
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The broker's one shutdown order, shared by `serve` and `broker`: on the first SIGTERM or
/// SIGINT log and send STOPPING=1, stop whatever feeds the broker (the spawned front, or the split
/// listener), drain and revoke (`BrokerService.shutdown`), clean up, stop the watchdog and the loop.
enum ShutdownSequence {
    static func install(
        loop: EventLoop, logger: Logger, service: BrokerService, watchdog: SystemdWatchdog?,
        stopIntake: @escaping (_ done: @escaping () -> Void) -> Void, cleanup: @escaping () -> Void
    ) throws(ConfigurationError) {
        var shuttingDown = false
        try wrap { () throws(SystemError) in
            try loop.handleSignals([SIGTERM, SIGINT]) { signal in
                guard !shuttingDown else { return }
                shuttingDown = true
                logger.info("shutdown.begin", metadata: ["signal": "\(signal)"])
                SystemdNotify.send("STOPPING=1")
                stopIntake {
                    service.shutdown {
                        cleanup()
                        watchdog?.stop()
                        logger.info("shutdown.done")
                        loop.stop()
                    }
                }
            }
        }
    }
}
