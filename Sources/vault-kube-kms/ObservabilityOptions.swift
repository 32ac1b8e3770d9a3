import ArgumentParser
import KMSRuntime

/// The health and metrics flags of the spawn topology: the broker does not serve them itself,
/// it checks them and passes them to the front it starts (the front serves both processes'
/// figures).
struct ObservabilityOptions: ParsableArguments {
    @Option(help: "Front's port for /livez /readyz /healthz, 0 or negative disables (default 8081).")
    var healthPort: String?
    @Option(help: "IP address of the health port (default 127.0.0.1; 0.0.0.0 for hostNetwork httpGet probes).")
    var healthAddress: String?
    @Option(help: "deep (default: /readyz asks for Status) or hashicorp (/healthz always 200, /readyz once serving).")
    var healthMode: String?
    @Option(help: "Front's loopback port for /metrics, 0 or negative disables (default 9090).")
    var metricsPort: String?
    @Flag(help: "Leave the process_* families out of /metrics.")
    var disableRuntimeMetrics = false

    /// The flags for the front's command line (only those given here or in the environment;
    /// the front validates them and applies its defaults), each as one `--name=value` word so
    /// that a negative port stays a value.
    func frontArguments() throws(ConfigurationError) -> [String] {
        var arguments: [String] = []
        for (value, flag) in [
            (healthPort, "health-port"), (healthAddress, "health-address"), (healthMode, "health-mode"),
            (metricsPort, "metrics-port"),
        ] {
            if let given = Flags.resolve(value, flag) { arguments.append("--\(flag)=\(given)") }
        }
        if let address = Flags.resolve(healthAddress, "health-address") {
            _ = try HealthBindAddress(parsing: address)  // refused here, not in a restart loop of the front
        }
        if disableRuntimeMetrics || Flags.bool("disable-runtime-metrics") {
            arguments.append("--disable-runtime-metrics")
        }
        return arguments
    }
}
