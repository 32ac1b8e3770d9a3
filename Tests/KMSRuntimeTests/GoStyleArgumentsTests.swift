import Testing

@testable import KMSRuntime

/// `GoStyleArguments` over a grammar shaped like the broker's: every Go `flag` spelling becomes
/// the one conventional spelling, and nothing else is touched.
struct GoStyleArgumentsTests {
    static let serve = CommandGrammar(
        name: "serve", valueOptions: ["listen-address", "metrics-port", "vault-namespace", "approle-role-id"],
        booleanFlags: ["tls-skip-verify", "help", "color", "no-color"])
    static let root = CommandGrammar(
        name: "vault-kube-kms", booleanFlags: ["help"],
        subcommands: ["serve": serve, "probe": CommandGrammar(name: "probe", valueOptions: ["listen-address"])],
        defaultSubcommand: "serve")

    private func normalize(_ arguments: [String]) throws -> [String] {
        try GoStyleArguments.normalize(arguments, grammar: Self.root)
    }

    @Test(arguments: [
        ["-listen-address=unix:///s"], ["-listen-address", "unix:///s"], ["--listen-address=unix:///s"],
        ["--listen-address", "unix:///s"],
    ])
    func everyValueSpellingBecomesTheConventionalOne(_ spelling: [String]) throws {
        #expect(try normalize(spelling) == ["--listen-address=unix:///s"])
    }

    @Test(arguments: [
        (["-tls-skip-verify"], ["--tls-skip-verify"]), (["--tls-skip-verify"], ["--tls-skip-verify"]),
        (["-tls-skip-verify=true"], ["--tls-skip-verify"]), (["--tls-skip-verify=true"], ["--tls-skip-verify"]),
        (["-tls-skip-verify=1"], ["--tls-skip-verify"]), (["-tls-skip-verify=T"], ["--tls-skip-verify"]),
        (["-tls-skip-verify=false"], []), (["--tls-skip-verify=FALSE"], []), (["-tls-skip-verify=0"], []),
    ])
    func everyBooleanSpellingMeansWhatGoSays(_ spelling: [String], _ expected: [String]) throws {
        #expect(try normalize(spelling) == expected)
    }

    @Test func aFalseBooleanWithADeclaredInversionBecomesTheInversion() throws {
        #expect(try normalize(["-color=false"]) == ["--no-color"])
        #expect(try normalize(["-no-color=false"]) == ["--color"])
    }

    @Test func aBooleanNeverConsumesTheNextArgument() throws {
        // Go: `-tls-skip-verify false` sets the flag and leaves "false" as an argument.
        #expect(try normalize(["-tls-skip-verify", "false"]) == ["--tls-skip-verify", "false"])
    }

    @Test func aValueOptionConsumesTheNextArgumentWhateverItLooksLike() throws {
        #expect(try normalize(["-metrics-port", "-1"]) == ["--metrics-port=-1"])
        #expect(try normalize(["-metrics-port=-1"]) == ["--metrics-port=-1"])
        #expect(try normalize(["--vault-namespace", "serve"]) == ["--vault-namespace=serve"])
        #expect(try normalize(["-approle-role-id="]) == ["--approle-role-id="])
        #expect(try normalize(["-listen-address=a=b"]) == ["--listen-address=a=b"])
    }

    @Test func aValueOptionAtTheEndIsLeftForTheParserToReport() throws {
        #expect(try normalize(["-listen-address"]) == ["--listen-address"])
    }

    @Test func anInvalidBooleanValueIsRefusedNamingTheFlagAsTyped() {
        #expect {
            try normalize(["-tls-skip-verify=maybe"])
        } throws: { error in
            "\(error)" == #"invalid boolean value "maybe" for -tls-skip-verify: use true or false"#
        }
    }

    @Test func unknownNamesShortOptionsAndTheTerminatorPassThrough() throws {
        #expect(try normalize(["-no-such-flag=1"]) == ["-no-such-flag=1"])
        #expect(try normalize(["-h"]) == ["-h"])
        #expect(try normalize(["-help"]) == ["--help"])
        #expect(try normalize(["--", "-listen-address=x"]) == ["--", "-listen-address=x"])
        #expect(try normalize(["-"]) == ["-"])
        #expect(try normalize(["---x"]) == ["---x"])
        #expect(try normalize(["-=x"]) == ["-=x"])
    }

    @Test func subcommandsSelectTheirOwnOptions() throws {
        #expect(try normalize(["probe", "-listen-address", "unix:///p"]) == ["probe", "--listen-address=unix:///p"])
        // `metrics-port` belongs to serve, not probe: passed through for the parser to refuse.
        #expect(try normalize(["probe", "-metrics-port=0"]) == ["probe", "-metrics-port=0"])
        #expect(try normalize(["serve", "-tls-skip-verify=true"]) == ["serve", "--tls-skip-verify"])
    }

    @Test func withoutASubcommandTheDefaultSubcommandsOptionsApply() throws {
        #expect(
            try normalize(["-metrics-port=0", "-tls-skip-verify=true"]) == ["--metrics-port=0", "--tls-skip-verify"])
    }

    @Test func aSubcommandNameAfterTheFirstArgumentIsAValue() throws {
        // Only the first word of a command level can name a subcommand.
        #expect(try normalize(["-metrics-port", "0", "probe"]) == ["--metrics-port=0", "probe"])
    }

    @Test func conventionalArgumentsAreRecognisedAsNeedingNoRewrite() throws {
        // Skipping is safe: for these the rewrite would only join `--name value` into
        // `--name=value`, which the parser reads the same.
        for (conventional, rewritten) in [
            (
                ["--listen-address", "unix:///s", "--tls-skip-verify"],
                ["--listen-address=unix:///s", "--tls-skip-verify"]
            ),
            (["-h"], ["-h"]), (["probe", "--help"], ["probe", "--help"]), ([], []),
        ] {
            #expect(!GoStyleArguments.mayNeedRewriting(conventional))
            #expect(try normalize(conventional) == rewritten)
        }
        for goStyle in [["-listen-address=x"], ["--tls-skip-verify=false"], ["--metrics-port", "-1"], ["-help"]] {
            #expect(GoStyleArguments.mayNeedRewriting(goStyle))
        }
        #expect(!GoStyleArguments.mayNeedRewriting(["--", "-listen-address=x"]))
    }

    @Test func goBoolParsingMatchesStrconv() {
        for text in ["1", "t", "T", "TRUE", "true", "True"] { #expect(GoStyleArguments.parseBool(text) == true) }
        for text in ["0", "f", "F", "FALSE", "false", "False"] { #expect(GoStyleArguments.parseBool(text) == false) }
        for text in ["yes", "on", "tRUE", ""] { #expect(GoStyleArguments.parseBool(text) == nil) }
    }

    @Test func theGrammarIsReadFromArgumentParsersToolDescription() throws {
        let json = """
            {"serializationVersion":0,"command":{"commandName":"tool","defaultSubcommand":"serve",
            "arguments":[{"kind":"flag","names":[{"kind":"short","name":"h"},{"kind":"long","name":"help"}]}],
            "subcommands":[{"commandName":"serve","aliases":["run"],"arguments":[
              {"kind":"option","names":[{"kind":"long","name":"listen-address"}]},
              {"kind":"flag","names":[{"kind":"long","name":"tls-skip-verify"}]},
              {"kind":"option","names":[{"kind":"longWithSingleDash","name":"legacy"}]},
              {"kind":"positional","names":[{"kind":"long","name":"files"}]}]}]}}
            """
        let grammar = try CommandGrammar(toolDescription: json)
        #expect(grammar.booleanFlags == ["help"])
        #expect(grammar.defaultSubcommand == "serve")
        let serve = try #require(grammar.subcommands["serve"])
        #expect(serve.valueOptions == ["listen-address", "legacy"])
        #expect(serve.booleanFlags == ["tls-skip-verify"])
        #expect(grammar.subcommands["run"] == serve)
        #expect(throws: ConfigurationError.self) { try CommandGrammar(toolDescription: "{}") }
    }
}
