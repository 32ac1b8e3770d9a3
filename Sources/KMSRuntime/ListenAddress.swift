/// A Unix socket address as written on the command line: `unix:///path` or abstract
/// `unix:///@name` (the form kube-apiserver's `endpoint` uses), or a bare absolute path
/// (`/var/run/kmsplugin/kms.sock`, as HashiCorp's examples write it), which is a socket path.
public enum ListenAddress: Equatable, Sendable, CustomStringConvertible {
    case path(String)
    case abstract(String)

    /// sun_path is 108 bytes including the terminating NUL (or leading NUL for abstract names).
    public static let maxPathBytes = 107

    public init(parsing text: String) throws(ConfigurationError) {
        let rest: String
        if text.hasPrefix("unix://") {
            rest = String(text.dropFirst("unix://".count))
        } else if text.hasPrefix("/") {
            rest = text
        } else {
            throw ConfigurationError(
                "listen address must start with unix:// or be an absolute path (got \(text.debugDescription))")
        }
        guard rest.hasPrefix("/") else { throw ConfigurationError("listen address must be absolute: unix:///path") }
        if rest.hasPrefix("/@") && text.hasPrefix("unix://") {
            let name = String(rest.dropFirst(2))
            guard !name.isEmpty, name.utf8.count <= Self.maxPathBytes else {
                throw ConfigurationError("abstract socket name must be 1-\(Self.maxPathBytes) bytes")
            }
            self = .abstract(name)
        } else {
            guard rest.utf8.count <= Self.maxPathBytes else {
                throw ConfigurationError("socket path longer than \(Self.maxPathBytes) bytes")
            }
            guard !rest.hasSuffix("/"), !rest.contains("\0") else { throw ConfigurationError("invalid socket path") }
            self = .path(rest)
        }
    }

    public var description: String {
        switch self {
        case .path(let path): "unix://\(path)"
        case .abstract(let name): "unix:///@\(name)"
        }
    }
}

/// An invalid flag, file or environment: printed to the operator as is, never containing a secret.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
