import CCurl
import KMSRuntime

#if canImport(Glibc)
    import Glibc
#endif

/// A request's header lines as a `curl_slist` for CURLOPT_HTTPHEADER, built in one allocation
/// (the list nodes, then the NUL-terminated lines) instead of a `malloc` and `strdup` per line
/// through `curl_slist_append`. libcurl only reads the list, so it is ours to free: `wipeAndFree`
/// zeroes the whole block first, which is where the token line lives.
struct CurlHeaderBlock {
    static let vaultRequest: StaticString = "X-Vault-Request: true"
    static let acceptJSON: StaticString = "Accept: application/json"
    static let noExpect: StaticString = "Expect:"
    static let contentTypeJSON: StaticString = "Content-Type: application/json"

    /// The lines of one request, gathered before the block is sized.
    struct Lines {
        enum Part {
            case constant(StaticString)
            case text(String)
            case secret(SecretBytes)
        }

        /// Each line is a header name (with its `: `) and a value.
        fileprivate var lines: [(StaticString?, Part)] = []

        mutating func add(_ line: StaticString) { lines.append((nil, .constant(line))) }
        mutating func add(name: StaticString, value: String) { lines.append((name, .text(value))) }
        mutating func add(name: StaticString, secret: SecretBytes) { lines.append((name, .secret(secret))) }
    }

    private let block: UnsafeMutableRawBufferPointer
    /// The first node; nil only for an empty list.
    let list: UnsafeMutablePointer<curl_slist>?

    init(_ lines: Lines) {
        func length(_ part: Lines.Part) -> Int {
            switch part {
            case .constant(let text): text.utf8CodeUnitCount
            case .text(let text): text.utf8.count
            case .secret(let secret): secret.count
            }
        }
        let nodeBytes = MemoryLayout<curl_slist>.stride * lines.lines.count
        let textBytes = lines.lines.reduce(0) { $0 + ($1.0?.utf8CodeUnitCount ?? 0) + length($1.1) + 1 }
        block = .allocate(byteCount: max(1, nodeBytes + textBytes), alignment: MemoryLayout<curl_slist>.alignment)
        let nodes = block.baseAddress!.bindMemory(to: curl_slist.self, capacity: lines.lines.count)
        var text = block.baseAddress! + nodeBytes
        func copy(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            text.copyMemory(from: base, byteCount: bytes.count)
            text += bytes.count
        }
        func copy(_ constant: StaticString) {
            copy(UnsafeRawBufferPointer(start: constant.utf8Start, count: constant.utf8CodeUnitCount))
        }
        for (index, (name, part)) in lines.lines.enumerated() {
            let start = text
            if let name { copy(name) }
            switch part {
            case .constant(let constant): copy(constant)
            case .text(let value):
                var value = value
                value.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
            case .secret(let secret): secret.withUnsafeBytes { copy($0) }
            }
            text.storeBytes(of: 0, as: UInt8.self)
            text += 1
            let next = index + 1 < lines.lines.count ? nodes + index + 1 : nil
            (nodes + index).initialize(
                to: curl_slist(data: start.assumingMemoryBound(to: CChar.self), next: next))
        }
        list = lines.lines.isEmpty ? nil : nodes
    }

    /// The header lines, in order (for tests).
    var lineStrings: [String] {
        var result: [String] = []
        var node = list
        while let current = node {
            result.append(String(cString: current.pointee.data))
            node = current.pointee.next
        }
        return result
    }

    func wipeAndFree() {
        explicit_bzero(block.baseAddress!, block.count)
        block.deallocate()
    }
}
