#include "proxy/socket_deadline.hpp"

namespace tollgate::proxy {
namespace {

void arm(const std::shared_ptr<deadline_detail::state>& state) {
  state->armed = true;
  std::uint64_t generation = ++state->generation;
  state->timer.expires_at(state->deadline);
  state->timer.async_wait([state, generation](error_code ec) {
    if (ec || generation != state->generation) return;  // re-armed, or the owner is gone
    state->armed = false;
    if (!state->socket || state->deadline == std::chrono::steady_clock::time_point::max()) return;
    if (std::chrono::steady_clock::now() < state->deadline) {
      arm(state);  // the deadline moved on since this wait began
      return;
    }
    state->timed_out = true;
    error_code ignored;
    state->socket->close(ignored);
  });
}

}  // namespace

socket_deadline::socket_deadline(const net::any_io_executor& executor, tcp::socket& socket)
    : state_(std::make_shared<deadline_detail::state>(executor)) {
  state_->socket = &socket;
}

socket_deadline::~socket_deadline() {
  state_->socket = nullptr;
  state_->timer.cancel();
}

void socket_deadline::expires_at(std::chrono::steady_clock::time_point deadline) {
  auto& state = *state_;
  state.deadline = deadline;
  // A wait due after the new deadline would fire too late: bring it forward. One due before
  // it re-arms itself when it fires.
  if (!state.armed || state.timer.expiry() > state.deadline) arm(state_);
}

}  // namespace tollgate::proxy
