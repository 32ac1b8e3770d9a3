import Testing

@testable import Front

struct HTTP2RequestRulesTests {
    static let good: [(String, String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/v2.KeyManagementService/Status"),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
    ]

    /// Feeds the fields; nil if one was refused, else whether the HEADERS are complete.
    static func judge(_ fields: [(String, String)], trailer: Bool = false, rules: inout HTTP2RequestRules) -> Bool? {
        for (name, value) in fields {
            let accepted = Array(name.utf8).withUnsafeBufferPointer { namePointer in
                Array(value.utf8).withUnsafeBufferPointer { valuePointer in
                    rules.field(name: namePointer, value: valuePointer, isTrailer: trailer)
                }
            }
            if !accepted { return nil }
        }
        return rules.headersAreComplete()
    }

    static func judge(_ fields: [(String, String)]) -> Bool? {
        var rules = HTTP2RequestRules()
        return judge(fields, rules: &rules)
    }

    static func replacing(_ name: String, with value: String) -> [(String, String)] {
        good.map { $0.0 == name ? ($0.0, value) : $0 }
    }

    @Test(
        "any :authority value is accepted, the socket path grpc-go sends included",
        arguments: ["/run/kmsplugin/kms.sock", "unix:///tmp/kms.sock", "localhost", "", "not a uri"])
    func anyAuthority(authority: String) {
        #expect(Self.judge(Self.replacing(":authority", with: authority)) == true)
    }

    @Test("a host field stands in for :authority, with any value")
    func hostInsteadOfAuthority() {
        let fields = Self.good.filter { $0.0 != ":authority" } + [("host", "/run/kms.sock")]
        #expect(Self.judge(fields) == true)
    }

    @Test("without :authority or host, or :method, :scheme, :path, the request is incomplete")
    func requiredFields() {
        for missing in [":authority", ":method", ":scheme", ":path"] {
            #expect(Self.judge(Self.good.filter { $0.0 != missing }) == false, "missing \(missing)")
        }
    }

    @Test(
        "a malformed field is refused",
        arguments: [
            (":authority", "a\u{0}b"), (":foo", "x"), (":protocol", "websocket"), (":status", "200"),
            ("X-Upper", "1"), ("connection", "close"), ("keep-alive", "1"), ("upgrade", "h2c"),
            ("transfer-encoding", "chunked"), ("te", "gzip"), ("content-length", "12a"),
            ("content-length", "99999999999999999999"), ("x-padded", " v"), ("x-padded", "v\t"),
        ])
    func malformedField(name: String, value: String) {
        let fields = Array(Self.good.prefix(4)) + [(name, value)] + Array(Self.good.dropFirst(4))
        #expect(Self.judge(fields) == nil)
    }

    @Test("pseudo-header fields: once each, non-empty (but :authority), before every regular field")
    func pseudoHeaderOrder() {
        #expect(Self.judge(Self.good + [(":path", "/again")]) == nil)
        #expect(Self.judge(Array(Self.good.prefix(3)) + [(":path", "/twice")] + Array(Self.good.dropFirst(3))) == nil)
        #expect(Self.judge(Self.replacing(":method", with: "")) == nil)
        #expect(Self.judge(Self.replacing(":method", with: "PO ST")) == nil)
        #expect(Self.judge(Self.replacing(":scheme", with: "1http")) == nil)
    }

    @Test("an http(s) :path starts with a slash; * only for OPTIONS")
    func pathShape() {
        #expect(Self.judge(Self.replacing(":path", with: "Status")) == false)
        #expect(Self.judge(Self.replacing(":path", with: "*")) == false)
        let options = Self.replacing(":method", with: "OPTIONS").map { $0.0 == ":path" ? ($0.0, "*") : $0 }
        #expect(Self.judge(options) == true)
    }

    @Test("CONNECT needs :authority and neither :scheme nor :path")
    func connect() {
        #expect(Self.judge([(":method", "CONNECT"), (":authority", "/run/kms.sock")]) == true)
        #expect(Self.judge([(":method", "CONNECT"), (":authority", "x"), (":path", "/")]) == false)
        #expect(Self.judge([(":method", "CONNECT")]) == false)
    }

    @Test("DATA must match a declared content-length, never exceed it")
    func contentLength() {
        var rules = HTTP2RequestRules()
        #expect(Self.judge(Self.good + [("content-length", "5")], rules: &rules) == true)
        let three = rules.data(count: 3)
        #expect(three)
        #expect(!rules.endOfStreamIsValid())
        let five = rules.data(count: 2)
        #expect(five)
        #expect(rules.endOfStreamIsValid())
        let six = rules.data(count: 1)
        #expect(!six)
        var twice = HTTP2RequestRules()
        #expect(Self.judge(Self.good + [("content-length", "5"), ("content-length", "5")], rules: &twice) == nil)
        var undeclared = HTTP2RequestRules()
        #expect(Self.judge(Self.good, rules: &undeclared) == true)
        let many = undeclared.data(count: 1_000_000)
        #expect(many && undeclared.endOfStreamIsValid())
    }

    @Test("trailers carry no pseudo-header field")
    func trailers() {
        var rules = HTTP2RequestRules()
        #expect(Self.judge(Self.good, rules: &rules) == true)
        #expect(Self.judge([("x-trailer", "1")], trailer: true, rules: &rules) != nil)
        #expect(Self.judge([(":path", "/x")], trailer: true, rules: &rules) == nil)
    }
}
