#!/usr/bin/env bash
# Only proxy/ may speak Asio or Beast, and only storage/ may speak SQLite: the layering the
# CMake link graph expresses, checked at the source level so an include cannot sneak past it.
set -u
root=${1:-$(dirname "$0")/..}
status=0
for dir in core adapters storage; do
  hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]boost/(asio|beast)' "$root/$dir" 2>/dev/null)
  if [ -n "$hits" ]; then echo "FAIL: $dir/ includes Asio or Beast: $hits"; status=1; fi
done
for dir in core adapters proxy; do
  hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]sqlite3' "$root/$dir" 2>/dev/null)
  if [ -n "$hits" ]; then echo "FAIL: $dir/ includes SQLite: $hits"; status=1; fi
done
hits=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"](prometheus/|boost/json)' "$root/core" 2>/dev/null)
if [ -n "$hits" ]; then echo "FAIL: core/ includes prometheus or Boost.JSON: $hits"; status=1; fi
[ $status -eq 0 ] && echo "layering: 1 passed, 0 failed" || echo "layering: 0 passed, 1 failed"
exit $status
