import KMSRuntime
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A temporary directory removed when released.
package final class TemporaryDirectory {
    package let path: String

    package init() {
        var template = Array("/tmp/broker-tests-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit { _ = system("rm -rf '\(path)'") }

    /// Writes `content` to `name` with `mode`; returns the full path.
    @discardableResult
    package func write(_ name: String, _ content: String, mode: mode_t = 0o400) -> String {
        let file = "\(path)/\(name)"
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "open \(file)")
        let bytes = Array(content.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        chmod(file, mode)
        return file
    }
}

/// Collects log events so tests can count `broker.reject` lines and check that no secret leaks.
package final class LogCapture: Sendable {
    package struct Event: Sendable {
        package var level: Logger.Level
        package var message: String
        package var fields: [String: String]
    }

    private let storage = Mutex<[Event]>([])

    package init() {}

    package var events: [Event] { storage.withLock { $0 } }

    package func events(named name: String) -> [Event] { events.filter { $0.message == name } }

    package var logger: Logger {
        var logger = Logger(label: "broker-test") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    fileprivate func append(_ event: Event) { storage.withLock { $0.append(event) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var fields: [String: String] = [:]
            for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
                fields[key] = "\(value)"
            }
            capture.append(Event(level: event.level, message: "\(event.message)", fields: fields))
        }
    }
}

/// Runs `loop` until `condition` holds or `timeoutMillis` pass; returns whether it held.
@discardableResult
package func runLoop(_ loop: EventLoop, timeoutMillis: Int64 = 3000, until condition: @escaping () -> Bool) -> Bool {
    if condition() { return true }
    let giveUp = EventLoop.nowMillis() + timeoutMillis
    var met = false
    func poll() {
        if condition() {
            met = true
            loop.stop()
        } else if EventLoop.nowMillis() >= giveUp {
            loop.stop()
        } else {
            loop.schedule(afterMillis: 2) { poll() }
        }
    }
    loop.schedule(afterMillis: 0) { poll() }
    loop.run()
    return met
}

/// Runs `loop` for `millis` regardless of what happens.
package func runLoop(_ loop: EventLoop, forMillis millis: Int64) {
    loop.schedule(afterMillis: millis) { loop.stop() }
    loop.run()
}
