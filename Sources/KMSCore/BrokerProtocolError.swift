/// Why a broker packet was refused. Any of these closes the connection that sent it.
public enum BrokerProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case oversized(Int)
    case badMagic
    case unsupportedVersion(UInt8)
    case unknownType(UInt8)
    case lengthMismatch(declared: UInt32, actual: Int)
    case reservedBitsSet
    case trailingBytes(Int)
    case fieldTooLong(StaticString)
    case fieldEmpty(StaticString)
    case invalidUTF8(StaticString)
    case unknownErrorCode(UInt8)
    case unexpectedDirection(UInt8)
    case unpairedAnswer(answer: UInt8, request: UInt8)
    case unknownMetricID(UInt16)
    case duplicateMetricID(UInt16)

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.description == rhs.description }

    public var description: String {
        switch self {
        case .truncated: "truncated packet"
        case .oversized(let size): "oversized packet (\(size) bytes)"
        case .badMagic: "bad magic"
        case .unsupportedVersion(let version): "unsupported protocol version \(version)"
        case .unknownType(let type): "unknown message type \(type)"
        case .lengthMismatch(let declared, let actual): "payload length \(declared) but \(actual) bytes follow"
        case .reservedBitsSet: "reserved header bytes not zero"
        case .trailingBytes(let count): "\(count) trailing bytes"
        case .fieldTooLong(let name): "field \(name) too long"
        case .fieldEmpty(let name): "field \(name) empty"
        case .invalidUTF8(let name): "field \(name) is not UTF-8"
        case .unknownErrorCode(let code): "unknown error code \(code)"
        case .unexpectedDirection(let type): "message type \(type) not allowed in this direction"
        case .unpairedAnswer(let answer, let request): "answer type \(answer) for a request of type \(request)"
        case .unknownMetricID(let id): "unknown metric id \(id)"
        case .duplicateMetricID(let id): "metric id \(id) repeated"
        }
    }
}
