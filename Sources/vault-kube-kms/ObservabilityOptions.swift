import ArgumentParser

/// `--health-port` and `--metrics-port` of the spawn topology: the broker does not serve them
/// itself, it passes them to the front it starts (the front serves both processes' figures).
struct ObservabilityOptions: ParsableArguments {
    @Option(help: "Front's loopback port for /livez /readyz /healthz, 0 disables (default 8081).")
    var healthPort: String?
    @Option(help: "Front's loopback port for /metrics, 0 disables (default 9090).")
    var metricsPort: String?

    /// The flags for the front's command line (only those given here or in the environment;
    /// the front validates them and applies its defaults).
    var frontArguments: [String] {
        var arguments: [String] = []
        if let port = Flags.resolve(healthPort, "health-port") { arguments += ["--health-port", port] }
        if let port = Flags.resolve(metricsPort, "metrics-port") { arguments += ["--metrics-port", port] }
        return arguments
    }
}
