/// A reader of Prometheus text exposition format 0.0.4 samples (`name{label="value",...} value
/// [timestamp]`), enough for `vault-kube-kms rotation status` to read our page and an apiserver's.
/// Comments and blank lines are skipped; a malformed sample line is an error naming its line.
public struct PrometheusSample: Equatable, Sendable {
    public var name: String
    public var labels: [String: String]
    public var value: Double

    public init(name: String, labels: [String: String], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }
}

public struct PrometheusTextError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var reason: String
    public var description: String { "line \(line): \(reason)" }

    public init(line: Int, reason: String) {
        self.line = line
        self.reason = reason
    }
}

public enum PrometheusSamples {
    /// Every sample of `text` whose name is in `names` (all samples when `names` is empty).
    public static func parse(_ text: String, names: Set<String> = []) throws(PrometheusTextError) -> [PrometheusSample]
    {
        var samples: [PrometheusSample] = []
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = Array(rawLine.utf8.last == 0x0D ? rawLine.utf8.dropLast() : rawLine.utf8[...])
            guard let first = line.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }), line[first] != UInt8(ascii: "#")
            else { continue }
            var index = first
            while index < line.count, line[index] != UInt8(ascii: "{"), line[index] != 0x20, line[index] != 0x09 {
                index += 1
            }
            let name = String(decoding: line[first..<index], as: UTF8.self)
            if !names.isEmpty, !names.contains(name) { continue }
            guard isMetricName(name) else { throw PrometheusTextError(line: number, reason: "bad metric name") }
            var labels: [String: String] = [:]
            if index < line.count, line[index] == UInt8(ascii: "{") {
                index += 1
                while true {
                    while index < line.count, line[index] == 0x20 || line[index] == UInt8(ascii: ",") { index += 1 }
                    guard index < line.count else {
                        throw PrometheusTextError(line: number, reason: "unterminated labels")
                    }
                    if line[index] == UInt8(ascii: "}") {
                        index += 1
                        break
                    }
                    let nameStart = index
                    while index < line.count, line[index] != UInt8(ascii: "="), line[index] != 0x20 { index += 1 }
                    let labelName = String(decoding: line[nameStart..<index], as: UTF8.self)
                    guard index + 1 < line.count, line[index] == UInt8(ascii: "="),
                        line[index + 1] == UInt8(ascii: "\"")
                    else {
                        throw PrometheusTextError(
                            line: number, reason: "label \(labelName.prefix(40)) has no quoted value")
                    }
                    index += 2
                    var value: [UInt8] = []
                    var closed = false
                    while index < line.count {
                        let byte = line[index]
                        if byte == UInt8(ascii: "\\"), index + 1 < line.count {
                            let next = line[index + 1]
                            value.append(next == UInt8(ascii: "n") ? 0x0A : next)
                            index += 2
                        } else if byte == UInt8(ascii: "\"") {
                            index += 1
                            closed = true
                            break
                        } else {
                            value.append(byte)
                            index += 1
                        }
                    }
                    guard closed else { throw PrometheusTextError(line: number, reason: "unterminated label value") }
                    labels[labelName] = String(decoding: value, as: UTF8.self)
                }
            }
            let rest = String(decoding: line[index...], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\t" }
            )
            guard let valueText = rest.first, rest.count <= 2, let value = parseValue(valueText) else {
                throw PrometheusTextError(line: number, reason: "bad sample value")
            }
            samples.append(PrometheusSample(name: name, labels: labels, value: value))
        }
        return samples
    }

    static func parseValue(_ text: Substring) -> Double? {
        switch text {
        case "+Inf", "Inf": return .infinity
        case "-Inf": return -.infinity
        case "NaN": return .nan
        default: return Double(text)
        }
    }

    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy {
            (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x5F
                || $0 == 0x3A
        }
    }
}
