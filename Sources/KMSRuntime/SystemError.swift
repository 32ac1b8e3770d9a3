#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call: the call's name and errno, printable without any secret.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno code: Int32 = Glibc.errno) {
        self.call = call
        self.errno = code
    }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}
