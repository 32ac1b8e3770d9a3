#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What a command line may contain, per (sub)command: which long names take a value, which are
/// booleans, which subcommands exist. `GoStyleArguments` needs it to know whether `-name x`
/// consumes `x` and whether `-name=false` is a boolean. It is derived from the declared options
/// (swift-argument-parser's own tool description, `ParsableCommand._dumpHelp()`), never
/// written by hand, so a flag added to a command is covered the moment it is declared.
public struct CommandGrammar: Equatable, Sendable {
    public var name: String
    /// Long names (without dashes) that take a value.
    public var valueOptions: Set<String>
    /// Long names (without dashes) that take none (booleans, `help`).
    public var booleanFlags: Set<String>
    public var subcommands: [String: CommandGrammar]
    public var defaultSubcommand: String?

    public init(
        name: String, valueOptions: Set<String> = [], booleanFlags: Set<String> = [],
        subcommands: [String: CommandGrammar] = [:], defaultSubcommand: String? = nil
    ) {
        self.name = name
        self.valueOptions = valueOptions
        self.booleanFlags = booleanFlags
        self.subcommands = subcommands
        self.defaultSubcommand = defaultSubcommand
    }

    public enum Kind: Equatable, Sendable {
        case value
        case boolean
    }

    public func kind(of name: String) -> Kind? {
        if valueOptions.contains(name) { return .value }
        if booleanFlags.contains(name) { return .boolean }
        return nil
    }

    /// Reads swift-argument-parser's tool description (the JSON of `_dumpHelp()`, format
    /// `ToolInfoV0`): only command names, subcommands and each named argument's kind and names.
    public init(toolDescription json: String) throws(ConfigurationError) {
        do {
            let tool = try JSONDecoder().decode(ToolInfo.self, from: Data(json.utf8))
            self.init(tool.command)
        } catch {
            throw ConfigurationError("cannot read the command-line description: \(error)")
        }
    }

    private init(_ command: ToolInfo.Command) {
        var values: Set<String> = []
        var booleans: Set<String> = []
        for argument in command.arguments ?? [] {
            for name in argument.names ?? [] where name.kind != "short" {
                switch argument.kind {
                case "option": values.insert(name.name)
                case "flag": booleans.insert(name.name)
                default: break
                }
            }
        }
        var subcommands: [String: CommandGrammar] = [:]
        for sub in command.subcommands ?? [] {
            let grammar = CommandGrammar(sub)
            subcommands[sub.commandName] = grammar
            for alias in sub.aliases ?? [] { subcommands[alias] = grammar }
        }
        self.init(
            name: command.commandName, valueOptions: values, booleanFlags: booleans, subcommands: subcommands,
            defaultSubcommand: command.defaultSubcommand)
    }

    /// The parts of `ToolInfoV0` read here.
    private struct ToolInfo: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
        }
        struct Argument: Decodable {
            var kind: String
            var names: [Name]?
        }
        struct Command: Decodable {
            var commandName: String
            var aliases: [String]?
            var defaultSubcommand: String?
            var subcommands: [Command]?
            var arguments: [Argument]?
        }
        var command: Command
    }
}
