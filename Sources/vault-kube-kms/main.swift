// vault-kube-kms: the credential broker. Thin main: parse, validate, wire, run.
import ArgumentParser
import Broker
import KMSCommandLine
import KMSRuntime

// The real argv (captured in C, not /proc/self/cmdline: see KMSRuntime.ProcessArguments), with
// Go's flag spellings rewritten for the parser (GoStyleArguments).
let arguments = Array(ProcessArguments.current(program: "vault-kube-kms").dropFirst())
BrokerCommand.main(BrokerCommand.goStyleArguments(arguments))
