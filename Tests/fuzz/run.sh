#!/usr/bin/env bash
# Builds the libFuzzer targets (swiftc -sanitize=fuzzer,address) from the project's own sources and
# runs each for a bounded time over its committed seed corpus.
#
#   Tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, every target)
#
# The modules a harness needs are compiled straight from Sources/ into static libraries with
# coverage and ASan, then
# linked with the harness Tests/fuzz/<target>/main.swift. Only pure parsing code is compiled: no
# sockets, no event loop. New inputs found during a run go to a scratch corpus, never into the
# committed seeds; a crash leaves its input in $OUT/artifacts and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECONDS_PER_TARGET=${1:-20}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(broker_request broker_answer grpc_request key_id vault_json http_request)
OUT=${FUZZ_OUT:-$ROOT/.build/fuzz}
SAN=(-sanitize=fuzzer,address -parse-as-library -Onone -g -swift-version 6)
mkdir -p "$OUT/mod" "$OUT/lib" "$OUT/bin" "$OUT/artifacts"

# module NAME SOURCES...: a static library and its .swiftmodule, rebuilt when a source is newer.
module() {
    local name=$1
    shift
    local lib=$OUT/lib/lib$name.a
    if [ -f "$lib" ] && [ -z "$(find "$@" -newer "$lib" 2>/dev/null)" ]; then return; fi
    echo "== fuzz: module $name" >&2
    swiftc "${SAN[@]}" -module-name "$name" -I "$OUT/mod" -emit-module -emit-module-path "$OUT/mod/$name.swiftmodule" \
        -emit-library -static -o "$lib" "$@"
}

module KMSCore "$ROOT"/Sources/KMSCore/*.swift
module KMSRuntime "$ROOT"/Sources/KMSRuntime/SecretBytes.swift
module Front "$ROOT"/Sources/Front/GRPCFraming.swift "$ROOT"/Sources/Front/GRPCStatus.swift \
    "$ROOT"/Sources/Front/KMSService.swift "$ROOT"/Sources/Front/HTTP2HeaderName.swift

# target NAME EXTRA_SOURCES...: the harness linked with every module (unused ones cost nothing).
build_target() {
    local name=$1
    shift
    echo "== fuzz: build $name" >&2
    # -package-name: the harness is compiled with the sources it tests, some of which are `package`.
    swiftc "${SAN[@]}" -package-name vault_kube_kms -module-name "fuzz_$name" -I "$OUT/mod" -L "$OUT/lib" \
        "$ROOT/Tests/fuzz/$name/main.swift" "$@" \
        -lFront -lKMSRuntime -lKMSCore -o "$OUT/bin/$name" 2> >(grep -v "ld.gold: warning" >&2)
}

status=0
for target in "${TARGETS[@]}"; do
    case $target in
        vault_json) build_target "$target" "$ROOT/Sources/VaultClient/VaultJSON.swift" \
            "$ROOT/Sources/VaultClient/SecretJSONField.swift" "$ROOT/Sources/VaultClient/JSONDocument.swift" ;;
        http_request) build_target "$target" "$ROOT/Sources/Front/HTTPRequestParser.swift" ;;
        *) build_target "$target" ;;
    esac
    scratch=$OUT/corpus/$target
    mkdir -p "$scratch"
    echo "== fuzz: run $target for ${SECONDS_PER_TARGET}s" >&2
    log=$OUT/$target.log
    if ! "$OUT/bin/$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -artifact_prefix="$OUT/artifacts/$target-" -print_final_stats=1 \
        "$scratch" "$ROOT/Tests/fuzz/$target/corpus" >"$log" 2>&1; then
        echo "fuzz target $target FAILED:" >&2
        grep -E "ERROR|SUMMARY|Fatal error|Test unit written" "$log" >&2 || tail -n 30 "$log" >&2
        status=1
    fi
    runs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+" "$log" | grep -Eo "[0-9]+$" || echo 0)
    corpus=$(find "$scratch" "$ROOT/Tests/fuzz/$target/corpus" -type f | wc -l)
    cov=$(grep -Eo "cov: [0-9]+" "$log" | tail -n 1 || true)
    echo "fuzz $target: $runs executions in ${SECONDS_PER_TARGET}s, corpus $corpus inputs, $cov" >&2
done
exit $status
