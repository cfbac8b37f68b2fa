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
// busy machine cannot starve it.
inline void make_this_thread_batch() noexcept {
  sched_param none{};
  ::sched_setscheduler(0, SCHED_BATCH, &none);  // 0: the calling thread
}

// Marks the calling thread as idle-priority work (Linux SCHED_IDLE): it runs on CPU time no
// other thread wants, and the scheduler treats a core running only such threads as free when
// it places a woken thread. It can starve on a saturated machine, so whatever runs at this
// priority needs a way to get its work done otherwise (storage::ledger has a guard thread).
// False when the kernel refuses.
inline bool make_this_thread_idle_priority() noexcept {
  sched_param none{};
  return ::sched_setscheduler(0, SCHED_IDLE, &none) == 0;
}

}  // namespace tollgate::core
