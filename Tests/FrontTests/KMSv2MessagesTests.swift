import KMSCore
import KMSv2API
import SwiftProtobuf
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The front's hand-written KMS v2 codec (KMSCore/KMSv2Messages.swift) against the generated
/// SwiftProtobuf types it replaced: every request the generated types accepted decodes to the same
/// values, every one they refused is refused, and every response encodes to the same bytes.
struct KMSv2MessagesTests {
    // MARK: the generated types as the oracle (unknown fields discarded, as the front decoded them)

    static var options: BinaryDecodingOptions {
        var options = BinaryDecodingOptions()
        options.discardUnknownFields = true
        return options
    }

    static func oracleEncrypt(_ bytes: [UInt8]) -> KMSv2Messages.EncryptRequest? {
        guard let message = try? V2_EncryptRequest(serializedBytes: bytes, options: options) else { return nil }
        return .init(plaintext: Array(message.plaintext), uid: message.uid)
    }

    static func oracleDecrypt(_ bytes: [UInt8]) -> KMSv2Messages.DecryptRequest? {
        guard let message = try? V2_DecryptRequest(serializedBytes: bytes, options: options) else { return nil }
        return .init(
            ciphertext: Array(message.ciphertext), uid: message.uid, keyID: message.keyID,
            annotations: message.annotations.mapValues { Array($0) })
    }

    static func oracleStatus(_ bytes: [UInt8]) -> Bool {
        (try? V2_StatusRequest(serializedBytes: bytes, options: options)) != nil
    }

    static func handEncrypt(_ bytes: [UInt8]) -> KMSv2Messages.EncryptRequest? {
        try? KMSv2Messages.EncryptRequest(decoding: bytes)
    }

    static func handDecrypt(_ bytes: [UInt8]) -> KMSv2Messages.DecryptRequest? {
        try? KMSv2Messages.DecryptRequest(decoding: bytes)
    }

    static func handStatus(_ bytes: [UInt8]) -> Bool {
        (try? KMSv2Messages.validateStatusRequest(bytes)) != nil
    }

    /// Decodes `bytes` as all three requests with both codecs and records every disagreement.
    static func expectSameVerdicts(_ bytes: [UInt8], _ comment: String = "") {
        let hex = bytes.prefix(64).map { String($0, radix: 16) }.joined(separator: " ")
        #expect(handEncrypt(bytes) == oracleEncrypt(bytes), "EncryptRequest \(comment): \(hex)")
        #expect(handDecrypt(bytes) == oracleDecrypt(bytes), "DecryptRequest \(comment): \(hex)")
        #expect(handStatus(bytes) == oracleStatus(bytes), "StatusRequest \(comment): \(hex)")
    }

    static func serialized(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        (try? message.serializedBytes()) ?? []
    }

    static func decryptRequest(annotations: [String: Data] = [:]) -> V2_DecryptRequest {
        var request = V2_DecryptRequest()
        request.ciphertext = Data(Array("vault:v3:".utf8) + Array(repeating: 0x41, count: 200))
        request.uid = "7d1a-uid-ü"
        request.keyID = "transit-v3-" + String(repeating: "ab", count: 16)
        request.annotations = annotations
        return request
    }

    // MARK: well-formed requests

    @Test("requests written by the generated types decode to the same fields")
    func generatedRequestsDecode() throws {
        var encrypt = V2_EncryptRequest()
        encrypt.plaintext = Data((0..<300).map { UInt8($0 % 256) })
        encrypt.uid = "6e2b6a4e-ü-uid"
        let encryptBytes = Self.serialized(encrypt)
        #expect(
            try KMSv2Messages.EncryptRequest(decoding: encryptBytes)
                == .init(plaintext: Array(encrypt.plaintext), uid: encrypt.uid))

        let annotations = ["a.example.com": Data([1, 2, 3]), "b.example.com": Data(), "ключ.example.com": Data([0])]
        let decrypt = Self.decryptRequest(annotations: annotations)
        let decoded = try KMSv2Messages.DecryptRequest(decoding: Self.serialized(decrypt))
        #expect(decoded.ciphertext == Array(decrypt.ciphertext))
        #expect(decoded.uid == decrypt.uid && decoded.keyID == decrypt.keyID)
        #expect(decoded.annotations == annotations.mapValues { Array($0) })

        try KMSv2Messages.validateStatusRequest(Self.serialized(V2_StatusRequest()))
        #expect(try KMSv2Messages.EncryptRequest(decoding: []) == .init())
        #expect(try KMSv2Messages.DecryptRequest(decoding: []) == .init())
    }

    // MARK: hostile requests, each against the oracle

    /// Field 1 (plaintext / ciphertext) "abc" and field 2 (uid) "u", for splicing.
    static let plain: [UInt8] = [0x0A, 3, 0x61, 0x62, 0x63, 0x12, 1, 0x75]

    static let hostile: [(String, [UInt8])] = [
        (
            "unknown varint, fixed64, fixed32, bytes",
            [0x48, 0xAC, 0x02] + [0x51] + [UInt8](repeating: 0, count: 8)
                + [0x5D, 1, 2, 3, 4] + [0x62, 2, 9, 9] + plain
        ),
        (
            "known fields with the wrong wire type are skipped",
            [0x08, 5, 0x11] + [UInt8](repeating: 1, count: 8)
                + [0x1D, 1, 2, 3, 4] + [0x20, 7] + plain
        ),
        ("a repeated field: the last one wins", plain + [0x0A, 1, 0x7A, 0x12, 2, 0x76, 0x77, 0x1A, 1, 0x6B]),
        ("a matched group is skipped", [0x33, 0x08, 1, 0x0A, 1, 0x41, 0x34] + plain),
        ("a group on a known field number is skipped", [0x0B, 0x10, 1, 0x0C] + plain),
        ("nested groups", [0x33, 0x3B, 0x08, 1, 0x3C, 0x34] + plain),
        ("a group ended by another field number", [0x33, 0x08, 1, 0x3C] + plain),
        ("a group never ended", [0x33, 0x08, 1]),
        ("an end-group key at the top level", [0x34] + plain),
        ("an end-group key alone", [0x0C]),
        ("groups nested 99 deep", [UInt8](repeating: 0x33, count: 99) + [UInt8](repeating: 0x34, count: 99)),
        ("groups nested 100 deep", [UInt8](repeating: 0x33, count: 100) + [UInt8](repeating: 0x34, count: 100)),
        ("wire type 6", [0x0E, 0]),
        ("wire type 7", [0x0F, 0]),
        ("field number 0", [0x02, 0] + plain),
        ("field number 0 as varint", [0x00, 0]),
        ("a length past the end", [0x0A, 5, 0x61]),
        ("a length of 2^31 - 1", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x07]),
        ("a length of 2^63", [0x0A] + [UInt8](repeating: 0x80, count: 9) + [0x01]),
        ("an unknown field's length past the end", [0x62, 0x7F, 0x61]),
        ("an unknown field's oversized length", [0x62, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
        ("a truncated fixed64", [0x51, 1, 2, 3]),
        ("a truncated fixed32", [0x5D, 1, 2]),
        ("a truncated varint", [0x48, 0x80]),
        ("a 10-byte varint", [0x48] + [UInt8](repeating: 0xFF, count: 9) + [0x7F] + plain),
        ("an 11-byte varint", [0x48] + [UInt8](repeating: 0xFF, count: 10) + [0x01] + plain),
        ("a 5-byte key", [0x8A, 0x80, 0x80, 0x80, 0x00, 1, 0x41]),
        ("a 6-byte key", [0x8A, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 0x41]),
        ("the largest field number", [0xFA, 0xFF, 0xFF, 0xFF, 0x0F, 1, 0x41] + plain),
        ("a key whose fifth byte is 16", [0xFA, 0xFF, 0xFF, 0xFF, 0x10, 1, 0x41]),
        ("a key cut short", [0x8A]),
        ("invalid UTF-8 in uid", [0x12, 2, 0xC3, 0x28]),
        ("invalid UTF-8 in key_id", [0x1A, 1, 0xFF]),
        ("a UTF-16 surrogate in uid", [0x12, 3, 0xED, 0xA0, 0x80]),
        ("an overlong encoding in uid", [0x12, 2, 0xC0, 0xAF]),
        ("invalid UTF-8 in a skipped field", [0x2A, 1, 0xFF] + plain),
        // annotations: map<string, bytes> = 4, each entry { key = 1; value = 2 }
        ("an annotation", [0x22, 7, 0x0A, 2, 0x6B, 0x31, 0x12, 1, 0x76]),
        ("an annotation without a value", [0x22, 4, 0x0A, 2, 0x6B, 0x31]),
        ("an annotation without a key", [0x22, 3, 0x12, 1, 0x76]),
        ("an empty annotation entry", [0x22, 0]),
        (
            "two entries with the same key: the last wins",
            [
                0x22, 5, 0x0A, 1, 0x6B, 0x12, 0, 0x22, 6, 0x0A, 1, 0x6B,
                0x12, 1, 0x76,
            ]
        ),
        ("an entry with an unknown field", [0x22, 9, 0x18, 5, 0x0A, 1, 0x6B, 0x22, 1, 0x41, 0x12, 0]),
        ("an entry with a group", [0x22, 7, 0x1B, 0x08, 1, 0x1C, 0x0A, 1, 0x6B]),
        ("an entry key of wire type varint", [0x22, 5, 0x08, 0x0A, 1, 0x6B, 0x12]),
        ("an entry value of wire type varint", [0x22, 5, 0x0A, 1, 0x6B, 0x10, 0x12]),
        ("an entry value of wire type fixed32", [0x22, 4, 0x15, 0x0A, 1, 0x6B]),
        ("an entry with an end-group key", [0x22, 2, 0x0C, 0x0A]),
        ("an entry with a 6-byte key", [0x22, 8, 0x8A, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 0x6B]),
        ("an entry key of 2^32", [0x22, 6, 0x82, 0x80, 0x80, 0x80, 0x10, 0x00]),
        ("an entry whose length runs past the message", [0x22, 9, 0x0A, 1, 0x6B]),
        ("an entry whose field runs past the entry", [0x22, 3, 0x0A, 5, 0x6B, 0x6B, 0x6B, 0x6B]),
        ("an entry key with invalid UTF-8", [0x22, 3, 0x0A, 1, 0xFF]),
        ("an entry with wire type 7", [0x22, 2, 0x0F, 0]),
        ("annotations of the wrong wire type", [0x20, 1] + plain),
    ]

    @Test("hostile requests get the verdicts and values the generated types gave them")
    func hostileRequests() {
        for (comment, bytes) in Self.hostile { Self.expectSameVerdicts(bytes, comment) }
    }

    @Test("the hostile cases include accepted and refused ones (the comparison is not vacuous)")
    func hostileCasesCoverBothVerdicts() {
        let verdicts = Self.hostile.map { Self.oracleDecrypt($0.1) != nil }
        #expect(verdicts.contains(true) && verdicts.contains(false))
    }

    @Test("randomly mutated requests get the verdicts and values the generated types gave them")
    func mutatedRequests() {
        var random = SplitMix64(seed: 17)
        var encrypt = V2_EncryptRequest()
        encrypt.plaintext = Data([UInt8](repeating: 0x5A, count: 32))
        encrypt.uid = "uid-1"
        let seeds: [[UInt8]] = [
            Self.serialized(encrypt),
            Self.serialized(Self.decryptRequest(annotations: ["a.example.com": Data([1, 2]), "b": Data()])),
            Self.hostile.flatMap { $0.1 }.prefix(300).map { $0 },
        ]
        var accepted = 0
        for round in 0..<6_000 {
            var bytes = seeds[round % seeds.count]
            for _ in 0...(random.next() % 4) {
                let position = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count))
                switch random.next() % 5 {
                case 0: if !bytes.isEmpty { bytes[position] = UInt8(truncatingIfNeeded: random.next()) }
                case 1: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                case 2: if !bytes.isEmpty { bytes.remove(at: position) }
                case 3: bytes = Array(bytes.prefix(position))
                default:
                    let key = [0x08, 0x0B, 0x0C, 0x22, 0x33, 0x34, 0x80, 0xFF][Int(random.next() % 8)]
                    bytes.insert(UInt8(key), at: position)
                }
            }
            if Self.oracleDecrypt(bytes) != nil { accepted += 1 }
            Self.expectSameVerdicts(bytes, "mutation round \(round)")
        }
        // Both verdicts occur often enough for the comparison to mean something.
        #expect(accepted > 300 && accepted < 5_700)
    }

    // MARK: responses

    @Test("responses encode to the bytes the generated types wrote")
    func responsesMatchTheGeneratedBytes() {
        let long = String(repeating: "k", count: 200)
        for (version, healthz, keyID) in [
            ("v2", "ok", "transit-v1-abc"), ("v2", "broker: not-ready", ""),
            ("", "", ""), ("v2", "ü", long),
        ] {
            var response = V2_StatusResponse()
            response.version = version
            response.healthz = healthz
            response.keyID = keyID
            #expect(
                KMSv2Messages.statusResponse(version: version, healthz: healthz, keyID: keyID)
                    == Self.serialized(response))
        }
        for (ciphertext, keyID) in [([UInt8](), ""), ([9, 9], "kid"), ([UInt8](repeating: 0x41, count: 1_000), long)] {
            var response = V2_EncryptResponse()
            response.ciphertext = Data(ciphertext)
            response.keyID = keyID
            #expect(KMSv2Messages.encryptResponse(ciphertext: ciphertext, keyID: keyID) == Self.serialized(response))
        }
        for plaintext in [[UInt8](), [1], [UInt8](repeating: 7, count: 128), [UInt8](repeating: 7, count: 20_000)] {
            var response = V2_DecryptResponse()
            response.plaintext = Data(plaintext)
            #expect(KMSv2Messages.decryptResponse(plaintext: plaintext) == Self.serialized(response))
        }
    }

    @Test("the refusals name their reason")
    func refusalReasons() {
        #expect(throws: ProtobufDecodingError.truncated) {
            try KMSv2Messages.EncryptRequest(decoding: [0x0A, 5, 0x61])
        }
        #expect(throws: ProtobufDecodingError.invalidKey) { try KMSv2Messages.EncryptRequest(decoding: [0x0F, 0]) }
        #expect(throws: ProtobufDecodingError.badGroup) { try KMSv2Messages.EncryptRequest(decoding: [0x34]) }
        #expect(throws: ProtobufDecodingError.invalidUTF8(field: 2)) {
            try KMSv2Messages.EncryptRequest(decoding: [0x12, 1, 0xFF])
        }
        #expect(throws: ProtobufDecodingError.malformed) {
            try KMSv2Messages.EncryptRequest(decoding: [0x8A, 0x80, 0x80, 0x80, 0x80, 0x00])
        }
    }
}

/// A small deterministic generator (SplitMix64), so a failing mutation round can be replayed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
