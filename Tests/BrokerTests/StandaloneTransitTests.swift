import KMSCore
import KMSRuntime
import KMSTestSupport
import Testing

@testable import Broker
@testable import VaultClient

/// `TransitClient` used on its own (as `preflight` does) with a `StaticTokenSource`.
struct StandaloneTransitTests {
    @Test func aStaticTokenReadsTheKeyAndAnInvalidTokenIsNotReplaced() throws {
        let loop = try EventLoop()
        let vault = FakeVault(loop: loop)
        vault.validTokens = ["hvs.static"]
        let tokens = StaticTokenSource(token: SecretBytes(Array("hvs.static".utf8)), loop: loop)
        let transit = TransitClient(
            keyPath: try TransitKeyPath(parsing: "transit/keys/kek"), namespace: nil, loop: loop, transport: vault,
            tokens: tokens)
        var metadata: KeyMetadata?
        transit.readKey(deadlineMillis: EventLoop.nowMillis() + 2000) { metadata = try? $0.get() }
        #expect(runLoop(loop) { metadata != nil })
        #expect(metadata?.latestVersion == 1)

        vault.validTokens = []
        var failure: VaultCallError?
        transit.readKey(deadlineMillis: EventLoop.nowMillis() + 2000) {
            if case .failure(let error) = $0 { failure = error }
        }
        #expect(runLoop(loop) { failure != nil })
        #expect(failure?.code == .permissionDenied)
        #expect(vault.requests(to: "/login").isEmpty)
    }
}
