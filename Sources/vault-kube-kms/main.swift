// vault-kube-kms: the credential broker. Thin main: parse, validate, wire, run.
import ArgumentParser
import Broker
import KMSRuntime

BrokerCommand.main()
