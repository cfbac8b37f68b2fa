#pragma once

#include "core/config.hpp"

namespace tollgate::proxy {

// Binds every listener, prints the start-up line, serves until SIGTERM or SIGINT, drains and
// returns the process exit code. Throws only during start-up.
int run_server(const core::config& config);

}  // namespace tollgate::proxy
