/// The verdict of one preflight check.
public enum PreflightOutcome: String, Comparable, Sendable {
    case pass = "PASS"
    case warn = "WARN"
    case fail = "FAIL"

    private var severity: Int {
        switch self {
        case .pass: 0
        case .warn: 1
        case .fail: 2
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.severity < rhs.severity }
}

/// One line of the preflight report: the check's stable name, its verdict and a detail for the
/// operator. Details are built from metadata only (paths, modes, TTLs, capability names); they
/// never contain the secret ID, a token or Vault's raw answer.
public struct PreflightResult: Equatable, Sendable {
    public let check: String
    public let outcome: PreflightOutcome
    public let detail: String

    public init(_ check: String, _ outcome: PreflightOutcome, _ detail: String) {
        self.check = check
        self.outcome = outcome
        self.detail = detail
    }

    /// `PASS  vault.reachable  ...`: the verdict, two spaces, the check, two spaces, the detail.
    public var line: String { "\(outcome.rawValue)  \(check)  \(detail)" }
}

/// Every check's result in the order they ran.
public struct PreflightReport: Sendable {
    public private(set) var results: [PreflightResult] = []

    public init(results: [PreflightResult] = []) { self.results = results }

    mutating func add(_ result: PreflightResult) { results.append(result) }

    mutating func add(_ check: String, _ outcome: PreflightOutcome, _ detail: String) {
        results.append(PreflightResult(check, outcome, detail))
    }

    /// The worst verdict, `.pass` for an empty report.
    public var worst: PreflightOutcome { results.map(\.outcome).max() ?? .pass }

    /// 0 when every check passed, 1 when the worst is a warning, 2 when any check failed.
    public var exitCode: Int32 {
        switch worst {
        case .pass: 0
        case .warn: 1
        case .fail: 2
        }
    }
}
