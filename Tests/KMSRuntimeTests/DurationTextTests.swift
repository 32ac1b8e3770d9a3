import KMSRuntime
import Testing

/// The one duration codec: flags, Vault's TTL strings and the reports' text.
struct DurationTextTests {
    @Test func durationsPrintAsWholeDaysOrHoursMinutesSeconds() {
        #expect(DurationText.text(seconds: 30 * 86400) == "30d")
        #expect(DurationText.text(seconds: 172_799) == "47h59m59s")
        #expect(DurationText.text(seconds: 5400) == "1h30m")
        #expect(DurationText.text(seconds: 0) == "0s")
    }

    @Test func goDurationsParseToSeconds() {
        #expect(DurationText.seconds("720h") == Int64(2_592_000))
        #expect(DurationText.seconds("1h30m") == Int64(5400))
        #expect(DurationText.seconds("0s") == Int64(0))
        #expect(DurationText.seconds("12x") == nil)
    }

    @Test(arguments: ["", "30", "5 m", "1d", "-5s", "ms", "1.5h", "99999999999999999h"])
    func malformedOrOverflowingTextHasNoValue(text: String) {
        #expect(DurationText.milliseconds(text) == nil)
    }

    @Test func flagsTakePositiveDurationsUpToADay() throws {
        #expect(try DurationText.millis("24h", flag: "stuck-after") == 86_400_000)
        #expect(throws: ConfigurationError.self) { try DurationText.millis("24h1ms", flag: "stuck-after") }
        #expect(throws: ConfigurationError.self) { try DurationText.millis("0", flag: "stuck-after") }
    }
}
