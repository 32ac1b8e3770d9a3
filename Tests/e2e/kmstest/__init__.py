"""Helpers of the e2e suites (Tests/e2e): the real binaries started in each topology (plugin, splitplugin,
oneuid, nspawnlane), the Vault servers behind them (openbao, baocluster, vaultenv), clients (kmsclient,
apiserver_sim, brokerproto, fakebroker) and fault injection (faultkit, faultproxy, tcpproxy, simctl).

Imported as `from kmstest import plugin`; Tests/e2e/conftest.py puts Tests/e2e on the import path (pytest's
rootdir conftest), scripts outside the suites add it themselves."""
