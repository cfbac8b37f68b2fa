#pragma once

#include "proxy/asio.hpp"

#include <boost/asio/executor_work_guard.hpp>

#include <functional>
#include <type_traits>
#include <utility>

namespace tollgate::proxy {

// Threads that own state (the accounting thread, the ledger's writer) are reached by message,
// never by lock. These two helpers turn such a message round trip into one co_await: the
// awaiting coroutine resumes on its own executor with the result, so it never touches the
// other thread's state and the other thread never touches its sockets.
//
// Pass lambdas that capture by reference ([&], [this]): the awaiting coroutine's locals
// outlive the round trip, and GCC 12 may destroy a co_await operand's temporaries twice
// (PR 99576), which is only harmless when their captures are trivially destructible.

// Runs `fn` on `target`'s thread and returns its result.
template <class Fn, class Result = std::invoke_result_t<Fn&>>
net::awaitable<Result> call_on(net::any_io_executor target, Fn fn) {
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(Result)>(
      [target](auto handler, Fn work) {
        auto origin = net::get_associated_executor(handler);
        // Keeps the awaiting side's io_context running while the message is away.
        auto guard = net::make_work_guard(origin);
        net::post(target, [work = std::move(work), handler = std::move(handler), guard = std::move(guard)]() mutable {
          Result result = work();
          auto origin = guard.get_executor();
          net::post(origin, [result = std::move(result), handler = std::move(handler)]() mutable {
            std::move(handler)(std::move(result));
          });
        });
      },
      net::use_awaitable, std::move(fn));
}

// Starts an operation that reports through a plain callback on some other thread (the ledger
// writer's task queue) and returns what the callback was given.
template <class Result, class Start>
net::awaitable<Result> await_callback(Start start) {
  co_return co_await net::async_initiate<decltype(net::use_awaitable), void(Result)>(
      [](auto handler, Start begin) {
        auto origin = net::get_associated_executor(handler);
        auto guard = net::make_work_guard(origin);
        // std::function needs a copyable target; the handler is move-only, so it travels in a
        // shared_ptr that the single callback invocation empties.
        using handler_type = decltype(handler);
        auto state = std::make_shared<std::pair<handler_type, decltype(guard)>>(std::move(handler), std::move(guard));
        begin([state](Result result) {
          auto origin = state->second.get_executor();
          net::post(origin, [state, result = std::move(result)]() mutable {
            std::move(state->first)(std::move(result));
            state->second.reset();
          });
        });
      },
      net::use_awaitable, std::move(start));
}

}  // namespace tollgate::proxy
