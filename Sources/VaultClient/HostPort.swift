/// The scheme, host and port of a validated `scheme://host[:port]` address.
struct HostPort: Equatable {
    var scheme: String
    var host: String
    var port: Int

    init?(baseURL: String) {
        var rest: Substring
        if baseURL.hasPrefix("https://") {
            scheme = "https"
            rest = baseURL.dropFirst("https://".count)
        } else if baseURL.hasPrefix("http://") {
            scheme = "http"
            rest = baseURL.dropFirst("http://".count)
        } else {
            return nil
        }
        let defaultPort = scheme == "https" ? 443 : 80
        if rest.hasPrefix("[") {
            // [v6]:port
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.isEmpty {
                port = defaultPort
            } else {
                guard rest.hasPrefix(":"), let parsed = Int(rest.dropFirst()) else { return nil }
                port = parsed
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = parsed
        } else {
            host = String(rest)
            port = defaultPort
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }
}
