/// The healthz reasons of a broker that is starting, not failing: it has not finished its first
/// AppRole login or its first read of the key's metadata. The front lets a Status call wait while
/// the broker reports one of these (Sources/Front/GRPCServer+BrokerWait.swift); any other reason
/// is answered at once.
public enum StartingHealth {
    public static let notLoggedInYet = "not logged in yet"
    public static let keyMetadataNotReadYet = "key metadata not read yet"

    public static func isStarting(_ healthz: String) -> Bool {
        healthz == notLoggedInYet || healthz == keyMetadataNotReadYet
    }
}
