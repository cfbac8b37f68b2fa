#pragma once

#include "proxy/request_context.hpp"
#include "proxy/worker_context.hpp"

namespace tollgate::proxy {

// The account phase's money half, run for every metered request whatever its outcome: prices
// the usage, hands one row to the ledger and the settlement (actual tokens and cost) to the
// accounting thread, and counts cost per provider and model. Never blocks: both hand-overs
// are lock-free rings.
void meter(worker_context& worker, request_context& ctx);

}  // namespace tollgate::proxy
