/// Go's `flag` package spellings, rewritten into the conventional form swift-argument-parser
/// reads, so that a command line written for HashiCorp's Go binary (OpenShift's operator passes
/// `-listen-address=... -tls-skip-verify=true -metrics-port=0`) means the same here.
///
/// Accepted for every declared long name, on every subcommand: `-name=value`, `-name value`,
/// `--name=value`, `--name value`; for booleans `-flag`, `--flag`, `-flag=true`, `-flag=false`
/// (and Go's other `strconv.ParseBool` spellings: 1, t, T, TRUE, True, 0, f, F, FALSE, False).
/// A value-taking name consumes the next argument whatever it looks like (`-metrics-port -1`),
/// as Go does; a boolean never consumes one. `-flag=false` drops the flag (or gives its `--no-`
/// inversion when one is declared). Names that are not declared, short options (`-h`) and
/// everything after `--` pass through untouched, so the parser reports unknown options in the
/// spelling the operator typed.
public enum GoStyleArguments {
    /// Rewrites `arguments` (without the program name) for the parser described by `grammar`.
    public static func normalize(_ arguments: [String], grammar: CommandGrammar) throws(ConfigurationError) -> [String]
    {
        var output: [String] = []
        var command = grammar
        // Subcommand names are only recognised before the first argument of a command level.
        var atCommandStart = true
        var index = 0
        while index < arguments.count {
            let token = arguments[index]
            index += 1
            if token == "--" {
                output += arguments[(index - 1)...]
                break
            }
            guard let (dashes, name, inlineValue) = split(token) else {
                if atCommandStart, let sub = command.subcommands[token] {
                    command = sub
                } else {
                    atCommandStart = false
                }
                output.append(token)
                continue
            }
            var kind = command.kind(of: name)
            if kind == nil, atCommandStart, let fallback = command.defaultSubcommand,
                let sub = command.subcommands[fallback], let inner = sub.kind(of: name)
            {
                // The parser runs the default subcommand for a line that names none.
                command = sub
                kind = inner
            }
            atCommandStart = false
            switch kind {
            case nil:
                output.append(token)
            case .boolean:
                guard let inlineValue else {
                    output.append("--" + name)
                    continue
                }
                switch parseBool(inlineValue) {
                case true?: output.append("--" + name)
                case false?: output += falseSpelling(of: name, in: command)
                case nil:
                    let given = String(repeating: "-", count: dashes) + name
                    throw ConfigurationError(
                        "invalid boolean value \(inlineValue.debugDescription) for \(given): use true or false")
                }
            case .value:
                if let inlineValue {
                    output.append("--\(name)=\(inlineValue)")
                } else if index < arguments.count {
                    output.append("--\(name)=\(arguments[index])")
                    index += 1
                } else {
                    output.append("--" + name)  // the parser reports the missing value
                }
            }
        }
        return output
    }

    /// False when `arguments` are already in the conventional form (no single-dash long name,
    /// no `--name=value`, no value starting with `-`): the caller may then skip building the
    /// grammar, which costs tens of milliseconds in a debug build.
    public static func mayNeedRewriting(_ arguments: [String]) -> Bool {
        var previous = ""
        for token in arguments {
            if token == "--" { return false }
            if token.hasPrefix("--") {
                if token.contains("=") { return true }
            } else if token.hasPrefix("-") {
                if token.count > 2 || previous.hasPrefix("--") { return true }
            }
            previous = token
        }
        return false
    }

    /// `-name`, `--name`, `-name=value`, `--name=value` → (dashes, name, value); nil for
    /// anything else (values, `-`, `--`, short options like `-h`, malformed `---x` or `-=x`).
    static func split(_ token: String) -> (dashes: Int, name: String, value: String?)? {
        let dashes = token.hasPrefix("--") ? 2 : (token.hasPrefix("-") ? 1 : 0)
        guard dashes > 0 else { return nil }
        let body = token.dropFirst(dashes)
        guard let first = body.first, first != "-", first != "=" else { return nil }
        let name: Substring
        let value: String?
        if let equals = body.firstIndex(of: "=") {
            name = body[..<equals]
            value = String(body[body.index(after: equals)...])
        } else {
            name = body
            value = nil
        }
        // A single letter after one dash is a short option (or a cluster of them): not Go's.
        if dashes == 1 && name.count == 1 { return nil }
        return (dashes, String(name), value)
    }

    /// Go's `strconv.ParseBool`.
    static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }

    /// `-name=false`: the declared inversion if there is one, else nothing (every boolean here
    /// defaults to off).
    private static func falseSpelling(of name: String, in command: CommandGrammar) -> [String] {
        if command.booleanFlags.contains("no-" + name) { return ["--no-" + name] }
        if name.hasPrefix("no-"), command.booleanFlags.contains(String(name.dropFirst(3))) {
            return ["--" + name.dropFirst(3)]
        }
        return []
    }
}
