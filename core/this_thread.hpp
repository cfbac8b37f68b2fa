#pragma once

#include <pthread.h>

#include <string>

namespace tollgate::core {

// Names the calling thread, so `top -H`, perf and /proc tell a worker from the ledger writer.
// Linux keeps at most 15 characters.
inline void name_this_thread(const std::string& name) noexcept {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace tollgate::core
