import Testing

@testable import Front

struct GRPCTimeoutTests {
    @Test(
        "every unit of grpc-timeout converts to milliseconds",
        arguments: [
            ("1H", Int64(3_600_000)), ("2M", 120_000), ("3S", 3_000), ("2999m", 2_999), ("3000000u", 3_000),
            ("3000000n", 3), ("0m", 0), ("99999999H", 99_999_999 * 3_600_000),
        ] as [(String, Int64)])
    func unitsConvert(value: String, milliseconds: Int64) {
        #expect(GRPCTimeout(parsing: value)?.milliseconds == milliseconds)
    }

    @Test(
        "sub-millisecond timeouts round up so a positive timeout stays positive",
        arguments: [
            ("1u", Int64(1)), ("999u", 1), ("1001u", 2), ("1n", 1), ("1000001n", 2),
        ] as [(String, Int64)])
    func subMillisecondRoundsUp(value: String, milliseconds: Int64) {
        #expect(GRPCTimeout(parsing: value)?.milliseconds == milliseconds)
    }

    @Test("eight digits are accepted, nine are not")
    func digitLimit() {
        #expect(GRPCTimeout(parsing: "12345678m")?.milliseconds == 12_345_678)
        #expect(GRPCTimeout(parsing: "123456789m") == nil)
    }

    @Test(
        "malformed grpc-timeout values are refused",
        arguments: [
            "", "S", "1", "1s", "1h", "1x", "-1S", "+1S", "1.5S", " 1S", "1S ", "1 S", "0x1S", "1SS", "１S", "1µ",
        ])
    func malformedIsRefused(value: String) {
        #expect(GRPCTimeout(parsing: value) == nil)
    }
}
