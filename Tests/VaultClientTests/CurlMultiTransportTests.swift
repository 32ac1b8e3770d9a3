import FoundationEssentials
import KMSRuntime
import KMSTestSupport
import Testing

@testable import VaultClient

#if canImport(Glibc)
    import Glibc
#endif

/// The real libcurl multi-socket transport on the broker's event loop, against a local server.
@Suite(.serialized)
struct CurlMultiTransportTests {
    struct Echo: Decodable {
        var port: Int
        var method: String
        var path: String
        var headers: [String: String]
        var body: String
    }

    private func makeTransport(_ loop: EventLoop, _ baseURL: String) throws -> CurlMultiTransport {
        try CurlMultiTransport(loop: loop, options: .init(baseURL: baseURL, caFile: nil, connectTimeoutMillis: 2000))
    }

    /// Sends `requests` at once and runs the loop until all complete.
    private func perform(_ loop: EventLoop, _ transport: CurlMultiTransport, _ requests: [VaultRequest])
        -> [VaultResponse?]
    {
        var responses = [VaultResponse?](repeating: nil, count: requests.count)
        for (index, request) in requests.enumerated() {
            transport.send(request) { responses[index] = $0 }
        }
        runLoop(loop, timeoutMillis: 10_000) { responses.allSatisfy { $0 != nil } }
        return responses
    }

    private func echo(_ response: VaultResponse?) -> Echo? {
        guard let response, response.status == 200 else { return nil }
        return try? JSONDecoder().decode(Echo.self, from: Data(response.body.bytes))
    }

    @Test func sequentialRequestsShareOneKeptAliveConnection() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        var ports: [Int] = []
        for index in 0..<4 {
            let response = perform(
                loop, transport, [VaultRequest(method: .get, path: "sys/conn/\(index)", timeoutMillis: 5000)])[0]
            let answer = try #require(echo(response))
            #expect(answer.path == "/v1/sys/conn/\(index)")
            ports.append(answer.port)
        }
        #expect(Set(ports).count == 1)
        #expect(transport.inFlightCount == 0)
    }

    @Test func concurrentRequestsCompleteThroughTheLoop() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let requests = (0..<5).map { VaultRequest(method: .get, path: "c/\($0)", timeoutMillis: 5000) }
        let responses = perform(loop, transport, requests)
        #expect(responses.compactMap(echo).map(\.path).sorted() == (0..<5).map { "/v1/c/\($0)" })
    }

    @Test func vaultHeadersAndTheBodyAreSent() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        var body = JSONBodyBuilder()
        body.string("ciphertext", "vault:v1:AAAA")
        let request = VaultRequest(
            method: .post, path: "transit/decrypt/kek", body: body.finish(),
            token: SecretBytes(Array("hvs.test-token".utf8)),
            namespace: "team-a", correlationID: "0b5e8a1c-uid", timeoutMillis: 5000)
        let answer = try #require(echo(perform(loop, transport, [request])[0]))
        #expect(answer.method == "POST")
        #expect(answer.headers["x-vault-token"] == "hvs.test-token")
        #expect(answer.headers["x-vault-request"] == "true")
        #expect(answer.headers["content-type"] == "application/json")
        #expect(answer.headers["x-vault-namespace"] == "team-a")
        #expect(answer.headers["x-correlation-id"] == "0b5e8a1c-uid")
        #expect(answer.headers["expect"] == nil)
        #expect(answer.body == #"{"ciphertext":"vault:v1:AAAA"}"#)
    }

    @Test func aReusedHandleCarriesNothingOfThePreviousRequest() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        var body = JSONBodyBuilder()
        body.string("plaintext", "c2VjcmV0")
        let post = VaultRequest(
            method: .post, path: "transit/encrypt/kek", body: body.finish(),
            token: SecretBytes(Array("hvs.first-token".utf8)), namespace: "team-a", correlationID: "uid-1",
            timeoutMillis: 5000)
        let first = try #require(echo(perform(loop, transport, [post])[0]))
        #expect(first.headers["x-vault-token"] == "hvs.first-token")
        // The same handle, now a GET without token, namespace or correlation id.
        let get = VaultRequest(method: .get, path: "sys/health", timeoutMillis: 5000)
        let second = try #require(echo(perform(loop, transport, [get])[0]))
        #expect(second.method == "GET")
        #expect(second.path == "/v1/sys/health")
        #expect(second.body == "")
        #expect(second.headers["x-vault-token"] == nil)
        #expect(second.headers["x-vault-namespace"] == nil)
        #expect(second.headers["x-correlation-id"] == nil)
        #expect(second.headers["content-type"] == nil)
        #expect(second.headers["x-vault-request"] == "true")
        // And a POST again, with another token and an empty body.
        let third = try #require(
            echo(
                perform(
                    loop, transport,
                    [
                        VaultRequest(
                            method: .post, path: "auth/token/renew-self", token: SecretBytes(Array("hvs.second".utf8)),
                            timeoutMillis: 5000)
                    ])[0]))
        #expect(third.method == "POST")
        #expect(third.body == "{}")
        #expect(third.headers["x-vault-token"] == "hvs.second")
        #expect(Set([first.port, second.port, third.port]).count == 1)
        #expect(transport.handlesCreated == 1)
    }

    @Test func concurrentRequestsGetTheirOwnHandlesAndReuseThemAfterwards() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let burst = (0..<4).map { VaultRequest(method: .get, path: "b/\($0)", timeoutMillis: 5000) }
        #expect(perform(loop, transport, burst).compactMap(echo).count == 4)
        #expect(transport.handlesCreated == 4)
        #expect(perform(loop, transport, burst).compactMap(echo).map(\.path).sorted() == (0..<4).map { "/v1/b/\($0)" })
        #expect(transport.handlesCreated == 4)
    }

    @Test func aHandleThatTimedOutServesTheNextRequestWithItsOwnTimeout() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let slow = perform(loop, transport, [VaultRequest(method: .get, path: "slow", timeoutMillis: 300)])[0]
        #expect(slow?.transportError == .timedOut)
        // The kept handle gets the new request's 5 s: the 2 s answer arrives.
        let started = EventLoop.nowMillis()
        let again = perform(loop, transport, [VaultRequest(method: .get, path: "slow", timeoutMillis: 5000)])[0]
        #expect(echo(again)?.path == "/v1/slow")
        #expect(EventLoop.nowMillis() - started >= 1500)
        #expect(transport.handlesCreated == 1)
    }

    @Test func theHeaderBlockHoldsEveryLineInOrderInOneAllocation() {
        var lines = CurlHeaderBlock.Lines()
        lines.add(CurlHeaderBlock.vaultRequest)
        lines.add(name: "X-Vault-Namespace: ", value: "team-a/sub")
        lines.add(name: "X-Vault-Token: ", secret: SecretBytes(Array("hvs.abc".utf8)))
        lines.add(CurlHeaderBlock.noExpect)
        let block = CurlHeaderBlock(lines)
        #expect(
            block.lineStrings == [
                "X-Vault-Request: true", "X-Vault-Namespace: team-a/sub", "X-Vault-Token: hvs.abc", "Expect:",
            ])
        block.wipeAndFree()
        #expect(CurlHeaderBlock(CurlHeaderBlock.Lines()).list == nil)
    }

    @Test func anUnsafeCorrelationIDIsNotSent() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let request = VaultRequest(
            method: .get, path: "x", correlationID: "a\r\nX-Vault-Token: evil", timeoutMillis: 5000)
        let answer = try #require(echo(perform(loop, transport, [request])[0]))
        #expect(answer.headers["x-correlation-id"] == nil)
        #expect(answer.headers["x-vault-token"] == nil)
    }

    @Test func aSlowAnswerTimesOutAtTheRequestDeadline() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let started = EventLoop.nowMillis()
        let response = perform(loop, transport, [VaultRequest(method: .get, path: "slow", timeoutMillis: 300)])[0]
        let elapsed = EventLoop.nowMillis() - started
        #expect(response?.transportError == .timedOut)
        #expect(elapsed >= 250 && elapsed < 1500)
        #expect(VaultErrorClassifier.classify(try #require(response))?.code == .deadlineExceeded)
    }

    @Test func aClosedPortIsAConnectFailure() throws {
        // Bind and close a socket to get a port nobody listens on.
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(probe, $0, length) == 0 && getsockname(probe, $0, &length) == 0
            }
        }
        let port = UInt16(bigEndian: address.sin_port)
        close(probe)
        let loop = try EventLoop()
        let transport = try makeTransport(loop, "http://127.0.0.1:\(port)")
        let response = perform(loop, transport, [VaultRequest(method: .get, path: "x", timeoutMillis: 3000)])[0]
        #expect(response?.transportError == .connectFailed)
        #expect(VaultErrorClassifier.classify(try #require(response))?.code == .unavailable)
    }

    @Test func aConnectionDroppedWithoutAnswerIsAReset() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        let response = perform(loop, transport, [VaultRequest(method: .get, path: "drop", timeoutMillis: 3000)])[0]
        #expect(response?.transportError == .connectionReset)
        #expect(VaultErrorClassifier.classify(try #require(response))?.isRetryable == true)
    }

    @Test func cancelAllCompletesPendingRequestsAsCancelled() throws {
        let server = try PythonHTTPServer()
        let loop = try EventLoop()
        let transport = try makeTransport(loop, server.baseURL)
        var response: VaultResponse?
        transport.send(VaultRequest(method: .get, path: "slow", timeoutMillis: 5000)) { response = $0 }
        runLoop(loop, forMillis: 100)
        transport.cancelAll()
        #expect(response?.transportError == .cancelled)
        #expect(transport.inFlightCount == 0)
    }
}
