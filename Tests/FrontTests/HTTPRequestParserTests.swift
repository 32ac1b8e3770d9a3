import Testing

@testable import Front

/// The health port's HTTP/1.1 parser: what it accepts, and the status for each refusal.
struct HTTPRequestParserTests {
    private func parse(_ text: String) -> HTTPRequestParser.Outcome { HTTPRequestParser.parse(Array(text.utf8)) }

    private func status(_ text: String) -> Int? {
        if case .refused(let status, _) = parse(text) { return status }
        return nil
    }

    @Test func aPrometheusScrapeIsAccepted() throws {
        let outcome = parse(
            "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nAccept: text/plain;version=0.0.4\r\n"
                + "User-Agent: Prometheus/2.42.0\r\n\r\n")
        guard case .request(let request) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(request.method == "GET")
        #expect(request.path == "/metrics")
        #expect(request.query == "x=1")
        #expect(request.header("HOST") == "127.0.0.1:9090")
        #expect(request.headers.count == 3)
    }

    @Test func http10WithoutHostIsAccepted() {
        guard case .request(let request) = parse("GET /livez HTTP/1.0\r\n\r\n") else { Issue.record(); return }
        #expect(request.path == "/livez")
    }

    @Test func aPartialHeadAsksForMoreBytes() {
        #expect(parse("GET /readyz HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(parse("") == .incomplete)
    }

    @Test func otherMethodsAreRefusedWith405() {
        #expect(status("POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == 405)
        #expect(status("HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n") == 405)
    }

    @Test func anOversizedHeadIsRefusedWith431() {
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + String(repeating: "a", count: 9000)
        #expect(status(big) == 431)
        #expect(status(big + "\r\n\r\n") == 431)
    }

    @Test func tooManyHeaderFieldsAreRefusedWith431() {
        let fields = (0...HTTPRequestParser.maxHeaderCount).map { "X-\($0): y\r\n" }.joined()
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n") == 431)
    }

    @Test func unsupportedVersionsAreRefusedWith505() {
        #expect(status("GET / HTTP/2.0\r\n\r\n") == 505)
        #expect(status("GET / FTP/1.0\r\n\r\n") == 400)
    }

    @Test func malformedHeadsAreRefusedWith400() {
        #expect(status("GET / HTTP/1.1\nHost: x\n\n") == 400)  // bare LF
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n") == 400)  // bare CR
        #expect(status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n") == 400)  // double space
        #expect(status("GET http://a/ HTTP/1.1\r\nHost: x\r\n\r\n") == 400)  // absolute form
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nX: a\u{01}b\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\n\r\n") == 400)  // no Host
        #expect(status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n") == 400)
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\n\r\nextra") == 400)
    }

    @Test func transferEncodingIsRefusedWith501() {
        #expect(status("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 501)
    }

    @Test func aLongTargetIsRefusedWith414() {
        let target = "/" + String(repeating: "a", count: HTTPRequestParser.maxTargetBytes)
        #expect(status("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n") == 414)
    }

    @Test func everyPrefixOfAValidRequestIsIncompleteAndNeverCrashes() {
        let bytes = Array("GET /readyz HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n".utf8)
        for length in 0..<bytes.count {
            #expect(HTTPRequestParser.parse(Array(bytes[..<length])) == .incomplete, "prefix \(length)")
        }
    }

    @Test func responsesCloseTheConnectionAndCarryTheLength() {
        let text = String(decoding: HTTPResponse(status: 503, body: "no\n").encoded(), as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(text.contains("\r\nConnection: close\r\n"))
        #expect(text.contains("\r\nContent-Length: 3\r\n"))
        #expect(text.hasSuffix("\r\n\r\nno\n"))
    }
}
