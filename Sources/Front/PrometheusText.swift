/// A writer for the Prometheus text exposition format 0.0.4: `# HELP` and `# TYPE` once per
/// family, then its samples. Label values are escaped (backslash, double quote, newline); the
/// callers pass only bounded label values (method names, status codes, operations, versions).
struct PrometheusText {
    /// The media type scrapers expect for this format.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    enum Kind: String {
        case counter, gauge, histogram, summary
    }

    private(set) var text = ""

    /// Starts a family; every sample written until the next family belongs to it.
    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " \(value)\n"
    }

    mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: UInt64) {
        sample(name, labels, String(value))
    }

    /// A duration or CPU time in microseconds, written in seconds.
    mutating func sample(_ name: String, _ labels: [(String, String)] = [], micros: UInt64) {
        sample(name, labels, Self.seconds(micros: micros))
    }

    /// Seconds with up to six decimals, without exponent or trailing zeros ("0.0001", "2.5", "10").
    static func seconds(micros: UInt64) -> String {
        let whole = micros / 1_000_000
        var fraction = String(micros % 1_000_000)
        guard fraction != "0" else { return String(whole) }
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(whole).\(fraction)"
    }

    static func escapeLabel(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }

    static func escapeHelp(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default: result.append(character)
            }
        }
        return result
    }
}
