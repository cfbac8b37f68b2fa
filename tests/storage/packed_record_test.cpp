#include "storage/packed_record.hpp"
#include "storage/spsc_ring.hpp"
#include "storage_fixture.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using tollgate::core::ledger_record;
using tollgate::core::ledger_record_view;
using tollgate::core::view_of;
using tollgate::storage::spsc_ring;
using tollgate::storage::detail::packed_record;
using tollgate::storage::testing::make_record;

namespace {

ledger_record owned(const ledger_record_view& v) {
  return tollgate::core::convert_text<std::string>(v, [](std::string_view text) { return std::string(text); });
}

ledger_record spilled_record() {
  ledger_record r = make_record(8);
  r.model = std::string(1000, 'm');  // far past the inline room
  r.user = std::string(200, 'u');
  return r;
}

}  // namespace

TEST_CASE("packed_record: every field round-trips, inline or spilled to the heap") {
  const ledger_record empty;  // SQLite must see '' for these, so no view may be null
  const ledger_record typical = make_record(7);
  const ledger_record spilled = spilled_record();
  for (const ledger_record* r : {&empty, &typical, &spilled}) {
    packed_record p;
    p.assign(view_of(*r));
    CHECK(owned(p.view()) == *r);
    tollgate::core::for_each_text(p.view(), [](std::string_view text) { CHECK(text.data() != nullptr); });
  }
}

TEST_CASE("packed_record: a move keeps the text and leaves a reusable record") {
  for (const ledger_record& r : {make_record(1), spilled_record()}) {
    packed_record a;
    a.assign(view_of(r));
    packed_record b(std::move(a));
    CHECK(owned(b.view()) == r);
    a.assign(view_of(make_record(2)));  // as a ring slot is, after the writer moved it out
    CHECK(owned(a.view()) == make_record(2));
    a = std::move(b);
    CHECK(owned(a.view()) == r);
  }
}

TEST_CASE("packed_record: reassigning replaces every field, whatever the previous size") {
  packed_record p;
  p.assign(view_of(spilled_record()));
  p.assign(view_of(make_record(3)));
  CHECK(owned(p.view()) == make_record(3));
  p.assign(view_of(spilled_record()));
  CHECK(owned(p.view()) == spilled_record());
}

TEST_CASE("spsc_ring: try_write fills a slot in place; a throw publishes nothing") {
  spsc_ring<packed_record> ring(4);
  CHECK(ring.try_write([](packed_record& slot) { slot.assign(view_of(make_record(1))); }) == 1);
  CHECK(ring.try_write([](packed_record&) { throw std::runtime_error("no"); }) == 0);
  CHECK(ring.size() == 1);
  CHECK(ring.try_write([](packed_record& slot) { slot.assign(view_of(make_record(2))); }) == 2);
  std::vector<ledger_record> out;
  ring.drain([&](packed_record&& r) { out.push_back(owned(r.view())); });
  CHECK(out == std::vector<ledger_record>{make_record(1), make_record(2)});
}
