import KMSCore
import Testing

@testable import Front

/// Issue 16: the deep readiness body's second line says which Vault address serves, only when the
/// broker has several (one address, or no METRICS answer yet: the body is the healthz line alone).
struct DeepReadinessAddressTests {
    @Test func severalAddressesNameTheServingIndexAndTheCount() {
        let line = FrontObservability.addressLine([.vaultAddressCount: 3, .vaultAddressIndex: 2])
        #expect(line == "vault_address_index=2 of 3\n")
    }

    @Test func oneAddressOrNoAnswerAddsNothing() {
        #expect(FrontObservability.addressLine([.vaultAddressCount: 1, .vaultAddressIndex: 0]) == "")
        #expect(FrontObservability.addressLine(nil) == "")
        #expect(FrontObservability.addressLine([:]) == "")
    }
}
