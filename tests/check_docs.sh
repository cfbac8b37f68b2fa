#!/usr/bin/env bash
# Every variable the binary knows (its --help, generated from the one settings table) must be
# documented in the README, and every metric family it exports must be too.
set -u
binary=$1
readme=$2/README.md
status=0
for name in $("$binary" --help | grep -oE '^  (TOLLGATE_[A-Z0-9_]+)' | tr -d ' '); do
  grep -q "\`$name\`" "$readme" || { echo "FAIL: $name is not documented in README.md"; status=1; }
done
for family in $(grep -ohE '"tollgate_[a-z0-9_]+"' "$2"/proxy/stats.cpp | tr -d '"' | sort -u); do
  grep -q "$family" "$readme" || { echo "FAIL: metric $family is not documented in README.md"; status=1; }
done
[ $status -eq 0 ] && echo "docs: 1 passed, 0 failed" || echo "docs: 0 passed, 1 failed"
exit $status
