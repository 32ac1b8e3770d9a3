/// The front's per-call figures: a duration histogram by method and gRPC status code, and
/// request and error counts per method. Labels come from closed sets (the three KMS methods plus
/// "unknown", the 17 gRPC codes), so the number of series is bounded.
final class CallMetrics {
    /// Upper bounds in microseconds of `rpc_server_call_duration_seconds`: 0.1 ms to 10 s. A
    /// Status from the broker's cache takes well under a millisecond; a Vault round trip a few ms;
    /// the apiserver's deadline is 3 s.
    static let secondsBucketMicros: [UInt64] = [
        100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ]

    /// Upper bounds in microseconds of HashiCorp's `rpc_server_duration_milliseconds`: the
    /// OpenTelemetry SDK's default explicit bucket boundaries (0, 5, 10, 25, 50, 75, 100, 250,
    /// 500, 750, 1000, 2500, 5000, 7500, 10000 ms), which otelgrpc's histogram uses unless told
    /// otherwise.
    static let millisecondsBucketMicros: [UInt64] = [
        0, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000, 250_000, 500_000, 750_000, 1_000_000,
        2_500_000, 5_000_000, 7_500_000, 10_000_000,
    ]

    /// Every bound of both histograms, ascending: calls are counted once, into these.
    static let bucketMicros: [UInt64] = Array(Set(secondsBucketMicros + millisecondsBucketMicros)).sorted()

    /// Method label of a call whose path named no KMS method.
    static let unknownMethod = "unknown"

    struct Key: Hashable, Comparable {
        var method: String
        var code: Int

        static func < (lhs: Key, rhs: Key) -> Bool { (lhs.method, lhs.code) < (rhs.method, rhs.code) }
    }

    struct Histogram: Equatable {
        /// Non-cumulative counts per bucket; the last slot is +Inf.
        var buckets = [UInt64](repeating: 0, count: CallMetrics.bucketMicros.count + 1)
        var sumMicros: UInt64 = 0
        var count: UInt64 = 0
    }

    private(set) var histograms: [Key: Histogram] = [:]

    /// Cumulative counts of `histogram` at each of `bounds` (each one of `bucketMicros`).
    static func cumulative(_ histogram: Histogram, at bounds: [UInt64]) -> [UInt64] {
        var result: [UInt64] = []
        var running: UInt64 = 0
        var index = 0
        for bound in bounds {
            while index < bucketMicros.count, bucketMicros[index] <= bound {
                running &+= histogram.buckets[index]
                index += 1
            }
            result.append(running)
        }
        return result
    }

    /// One answered call.
    func record(method: KMSMethod?, code: GRPCStatus.Code, micros: UInt64) {
        let key = Key(method: method?.rawValue ?? Self.unknownMethod, code: Int(code.rawValue))
        var histogram = histograms[key, default: Histogram()]
        let slot = Self.bucketMicros.firstIndex { micros <= $0 } ?? Self.bucketMicros.count
        histogram.buckets[slot] &+= 1
        histogram.sumMicros &+= micros
        histogram.count &+= 1
        histograms[key] = histogram
    }

    /// Calls per method label.
    var requestsByMethod: [String: UInt64] {
        histograms.reduce(into: [:]) { $0[$1.key.method, default: 0] &+= $1.value.count }
    }

    /// Calls answered with a status other than OK, per method label.
    var errorsByMethod: [String: UInt64] {
        histograms.reduce(into: [:]) { result, entry in
            if entry.key.code != 0 { result[entry.key.method, default: 0] &+= entry.value.count }
        }
    }
}
