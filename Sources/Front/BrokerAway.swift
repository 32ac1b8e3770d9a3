import KMSCore

extension KMSService {
    /// The healthz a Status call gets while the front has no broker connection (split
    /// topologies, between a broker loss and the reconnect): not `ok`, so kube-apiserver reports
    /// the plugin unhealthy at once instead of waiting for a deadline.
    public static let brokerAwayHealthz = "broker unavailable"

    /// The serialized Status response while the broker is away.
    static func brokerAwayStatus() -> Result<[UInt8], GRPCStatus> {
        .success(KMSv2Messages.statusResponse(version: protocolVersion, healthz: brokerAwayHealthz, keyID: ""))
    }
}
