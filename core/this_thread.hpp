#pragma once

#include <pthread.h>
#include <sched.h>

#include <string>

namespace tollgate::core {

// Names the calling thread, so `top -H`, perf and /proc tell a worker from the ledger writer.
// Linux keeps at most 15 characters.
inline void name_this_thread(const std::string& name) noexcept {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

// Marks the calling thread as batch work (Linux SCHED_BATCH): when it wakes up it no longer
// preempts a request-serving thread on the same core. It keeps its fair share of CPU, so a
// busy machine cannot starve it: for the ledger writer, falling behind would mean dropped rows.
inline void make_this_thread_batch() noexcept {
  sched_param none{};
  ::sched_setscheduler(0, SCHED_BATCH, &none);  // 0: the calling thread
}

}  // namespace tollgate::core
