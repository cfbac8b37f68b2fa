#include "core/inline_buffer.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>

using tollgate::core::inline_buffer;
using namespace std::string_view_literals;

TEST_CASE("inline_buffer: inline up to N, one heap block beyond, contents kept across the edge") {
  inline_buffer<8> b;
  CHECK(b.empty());
  CHECK(b.capacity() == 8);
  b.append("abcd");
  b.append("");
  b.append(std::string_view());  // a null data() is not copied from
  b.append("efgh");
  CHECK(b.view() == "abcdefgh");
  CHECK(b.capacity() == 8);
  b.append("i");
  CHECK(b.view() == "abcdefghi");
  CHECK(b.capacity() == 16);
  b.reserve(100);
  CHECK(b.capacity() == 100);
  CHECK(b.view() == "abcdefghi");
  b.clear();  // a reused buffer keeps its block
  CHECK(b.empty());
  CHECK(b.capacity() == 100);
}

TEST_CASE("inline_buffer: copies and moves, inline and spilled") {
  for (std::string_view text : {"short"sv, "longer than eight"sv}) {
    CAPTURE(text);
    inline_buffer<8> a;
    a.append(text);
    inline_buffer<8> copy(a);
    CHECK(copy.view() == text);
    inline_buffer<8> assigned;
    assigned.append("old contents");
    assigned = a;
    CHECK(assigned.view() == text);
    inline_buffer<8> moved(std::move(a));
    CHECK(moved.view() == text);
    CHECK(a.empty());  // a moved-from buffer is empty and inline, ready for reuse
    CHECK(a.capacity() == 8);
    a.append("reused");
    CHECK(a.view() == "reused");
    a = std::move(moved);
    CHECK(a.view() == text);
    CHECK(moved.empty());
  }
}
