.PHONY: run test build unit e2e proto format bench

run:    ## run the plugin against an OpenBao dev server (scripts/dev-run.sh) and leave it serving
	bash scripts/dev-run.sh

test:   ## the whole test suite (what CI runs)
	bash scripts/test.sh

build:
	swift build

unit:
	swift test

e2e: build
	python3 -m pytest -q Tests/e2e Tests/vaultsim/tests

proto:  ## regenerate Sources/KMSv2API/api.pb.swift (needs protoc)
	bash scripts/generate-proto.sh

format:
	swift format --in-place --recursive Sources Tests Package.swift

bench:  ## release builds, OpenBao (and the simulator) and h2load: plugin vs direct Vault (docs/benchmarks.md)
	bash scripts/bench.sh
