import ArgumentParser
import KMSRuntime

extension ParsableCommand {
    /// `arguments` (without the program name) with Go's flag spellings rewritten for the parser
    /// (`GoStyleArguments`), using this command tree's own declared options. A malformed Go
    /// spelling (`-tls-skip-verify=maybe`) exits like any other usage error.
    public static func goStyleArguments(_ arguments: [String]) -> [String] {
        guard GoStyleArguments.mayNeedRewriting(arguments) else { return arguments }
        do {
            let grammar = try CommandGrammar(toolDescription: _dumpHelp())
            return try GoStyleArguments.normalize(arguments, grammar: grammar)
        } catch {
            exit(withError: ValidationError(error.description))
        }
    }
}
