#!/usr/bin/env bash
# The Swift unit tests once under AddressSanitizer and once under ThreadSanitizer, each in its own
# scratch path (measured on the 2-core CI machine: ASan build ~170 s + run ~8 s, TSan build ~110 s +
# run ~8 s). Leak detection is off for the unit run: LeakSanitizer reports only "indirect" leaks,
# reference cycles between test fakes, event loops dropped with timers pending and XCTest's own
# runner objects, never a direct leak; the soak test (Tests/e2e/faults/test_soak.py) checks the running
# processes for growth instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
for sanitizer in address thread; do
    log=/tmp/vkk-swift-test-$sanitizer.log
    echo "== swift test --sanitize=$sanitizer" >&2
    start=$SECONDS
    if ! ASAN_OPTIONS=detect_leaks=0 swift test --sanitize=$sanitizer --scratch-path ".build-$sanitizer" >"$log" 2>&1 ||
        ! grep -qE "Test run with [0-9]+ tests? in [0-9]+ suites? passed" "$log" ||
        grep -qE "WARNING: ThreadSanitizer|ERROR: AddressSanitizer" "$log"; then
        echo "unit tests under $sanitizer sanitizer failed" >&2
        grep -E "✘|WARNING: ThreadSanitizer|ERROR: AddressSanitizer|SUMMARY" "$log" | head -n 40 >&2 || tail -n 60 "$log" >&2
        exit 1
    fi
    echo "$(grep -E "Test run with" "$log") ($sanitizer, $((SECONDS - start)) s)" >&2
done
