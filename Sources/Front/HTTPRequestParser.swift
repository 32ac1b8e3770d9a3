/// A small, strict HTTP/1.1 request parser for the loopback health and metrics ports. A pure
/// function over bytes (no I/O, no state): easy to fuzz. It accepts only what those ports need,
/// a `GET` with a short origin-form target and a few headers, and refuses everything else with
/// the status to answer (RFC 9112; ambiguities resolved by refusing).
public enum HTTPRequestParser {
    /// Request line plus headers plus the blank line. Prometheus and kubelet probes send a few
    /// hundred bytes; 8 KiB is the default limit of common servers (nginx, Go's net/http is 1 MiB).
    public static let maxHeadBytes = 8 * 1024
    /// More header fields than any probe or scraper sends.
    public static let maxHeaderCount = 64
    /// The longest request target accepted (`/metrics`, `/readyz`, ... are short).
    public static let maxTargetBytes = 256

    /// A parsed request: method, target split into path and query, headers in order.
    public struct Request: Equatable, Sendable {
        public var method: String
        public var path: String
        public var query: String?
        public var version: String
        public var headers: [(name: String, value: String)]

        public static func == (lhs: Request, rhs: Request) -> Bool {
            lhs.method == rhs.method && lhs.path == rhs.path && lhs.query == rhs.query && lhs.version == rhs.version
                && lhs.headers.map(\.name) == rhs.headers.map(\.name)
                && lhs.headers.map(\.value) == rhs.headers.map(\.value)
        }

        /// The first value of a header, by case-insensitive name.
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    public enum Outcome: Equatable, Sendable {
        /// No blank line yet and still under `maxHeadBytes`: read more.
        case incomplete
        /// A complete, acceptable request head (no body may follow).
        case request(Request)
        /// Refuse with `status` (400, 405, 414, 431, 501, 505); the reason is for the body.
        case refused(status: Int, reason: String)
    }

    /// Parses `bytes`, the start of what the client sent on a fresh connection.
    public static func parse(_ bytes: [UInt8]) -> Outcome {
        guard let end = headEnd(bytes) else {
            if bytes.count >= maxHeadBytes { return .refused(status: 431, reason: "request head too large") }
            if let bare = bytes.firstIndex(of: 0x0A), bare == 0 || bytes[bare - 1] != 0x0D {
                return .refused(status: 400, reason: "bare LF")
            }
            return .incomplete
        }
        guard end + 4 <= maxHeadBytes else { return .refused(status: 431, reason: "request head too large") }
        guard end + 4 == bytes.count else { return .refused(status: 400, reason: "bytes after the request head") }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < end {
            if bytes[index] == 0x0D {
                guard bytes[index + 1] == 0x0A else { return .refused(status: 400, reason: "bare CR") }
                lines.append(bytes[start..<index])
                index += 2
                start = index
            } else if bytes[index] == 0x0A {
                return .refused(status: 400, reason: "bare LF")
            } else {
                index += 1
            }
        }
        lines.append(bytes[start..<end])
        return parse(lines: lines)
    }

    private static func parse(lines: [ArraySlice<UInt8>]) -> Outcome {
        let parts = lines[0].split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .refused(status: 400, reason: "malformed request line")
        }
        guard parts[0].allSatisfy(isTokenByte) else { return .refused(status: 400, reason: "malformed method") }
        let method = String(decoding: parts[0], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            if version.hasPrefix("HTTP/"), parts[2].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                return .refused(status: 505, reason: "HTTP version not supported")
            }
            return .refused(status: 400, reason: "malformed HTTP version")
        }
        let target = parts[1]
        guard target.count <= maxTargetBytes else { return .refused(status: 414, reason: "request target too long") }
        guard target.first == UInt8(ascii: "/"), target.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x23 }) else {
            return .refused(status: 400, reason: "request target must be an origin-form path")
        }
        let targetText = String(decoding: target, as: UTF8.self)
        let path: String
        var query: String?
        if let mark = targetText.firstIndex(of: "?") {
            path = String(targetText[..<mark])
            query = String(targetText[targetText.index(after: mark)...])
        } else {
            path = targetText
        }

        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard headers.count < maxHeaderCount else { return .refused(status: 431, reason: "too many header fields") }
            guard let first = line.first, first != 0x20, first != 0x09 else {
                return .refused(status: 400, reason: "obsolete line folding")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return .refused(status: 400, reason: "header field without colon")
            }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
                return .refused(status: 400, reason: "malformed header field name")
            }
            var value = line[(colon + 1)...]
            while let byte = value.first, byte == 0x20 || byte == 0x09 { value = value.dropFirst() }
            while let byte = value.last, byte == 0x20 || byte == 0x09 { value = value.dropLast() }
            guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                return .refused(status: 400, reason: "control character in header field value")
            }
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        let request = Request(method: method, path: path, query: query, version: version, headers: headers)
        if version == "HTTP/1.1" {
            let hosts = headers.filter { $0.name.lowercased() == "host" }
            guard hosts.count == 1 else { return .refused(status: 400, reason: "HTTP/1.1 needs exactly one Host") }
        }
        if request.header("transfer-encoding") != nil {
            return .refused(status: 501, reason: "transfer-encoding not supported")
        }
        if let length = request.header("content-length"), length != "0" {
            return .refused(status: 400, reason: "a GET request has no body")
        }
        guard method == "GET" else { return .refused(status: 405, reason: "only GET is allowed") }
        return .request(request)
    }

    /// The index of the `\r\n\r\n` that ends the head, if present.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D && bytes[index + 3] == 0x0A {
            return index
        }
        return nil
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
