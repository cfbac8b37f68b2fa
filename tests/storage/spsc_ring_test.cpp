#include "storage/spsc_ring.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

using tollgate::storage::spsc_ring;

TEST_CASE("spsc_ring: capacity rounds up, full is refused, order is kept") {
  spsc_ring<int> ring(5);
  CHECK(ring.capacity() == 8);
  for (int i = 0; i < 8; ++i) CHECK(ring.try_push(i) == static_cast<std::size_t>(i + 1));
  CHECK(ring.try_push(8) == 0);
  std::vector<int> out;
  CHECK(ring.drain([&](int&& v) { out.push_back(v); }) == 8);
  CHECK(out == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(ring.size() == 0);
  CHECK(ring.try_push(9) != 0);
}

TEST_CASE("spsc_ring: a limited drain takes the oldest and leaves the rest in order") {
  spsc_ring<int> ring(8);
  for (int i = 0; i < 6; ++i) REQUIRE(ring.try_push(i) != 0);
  std::vector<int> out;
  CHECK(ring.drain([&](int&& v) { out.push_back(v); }, 4) == 4);
  CHECK(out == std::vector<int>{0, 1, 2, 3});
  CHECK(ring.size() == 2);
  for (int i = 6; i < 12; ++i) REQUIRE(ring.try_push(i) != 0);  // wraps around
  CHECK(ring.try_push(12) == 0);
  CHECK(ring.drain([&](int&& v) { out.push_back(v); }, 0) == 0);
  CHECK(ring.drain([&](int&& v) { out.push_back(v); }, 100) == 8);
  CHECK(out == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
}

TEST_CASE("spsc_ring: the depth from half full up is exact after many wraps") {
  // Regression: a stale cached head made the depth look past half forever after the first
  // capacity's worth of pushes, so the ledger woke its writer on every submit.
  spsc_ring<int> ring(16);
  for (int round = 0; round < 100; ++round) {
    std::size_t depth = 0;
    for (int i = 0; i < 10; ++i) depth = ring.try_push(i);
    CHECK(depth == 10);
    ring.drain([](int&&) {});
  }
}

TEST_CASE("spsc_ring: one producer and one consumer thread exchange every item once") {
  spsc_ring<std::string> ring(64);
  constexpr int n = 100'000;
  std::thread producer([&] {
    for (int i = 0; i < n;) {
      if (ring.try_push(std::to_string(i)) != 0) ++i;
    }
  });
  int expected = 0;
  bool in_order = true;
  while (expected < n) {
    ring.drain([&](std::string&& s) {
      in_order = in_order && s == std::to_string(expected);
      ++expected;
    });
  }
  producer.join();
  CHECK(in_order);
  CHECK(expected == n);
}
