// The operations listener: Prometheus metrics that add up to what was served, and the
// health and readiness probes.

#include "tests/integration/helpers.hpp"

#include <doctest/doctest.h>

namespace tollgate::itest {
namespace {

using namespace std::chrono_literals;

TEST_CASE("metrics: /healthz and /readyz answer 200, unknown paths 404") {
  proxied_fake p;
  REQUIRE(p.proxy.metrics_port() != 0);
  CHECK(p.proxy.metrics_port() != p.proxy.port());
  CHECK(testing::http_request(p.proxy.metrics_port(), "GET", "/healthz").status == 200);
  // Readiness may trail the started line by a moment; it must come, and stay.
  CHECK(eventually([&] { return testing::http_request(p.proxy.metrics_port(), "GET", "/readyz").status == 200; }, 2s));
  const auto ready = testing::http_request(p.proxy.metrics_port(), "GET", "/readyz");
  CHECK(ready.status == 200);
  CHECK(header(ready, "content-type") == "application/json");
  CHECK(testing::http_request(p.proxy.metrics_port(), "GET", "/nope").status == 404);
  // The API port does not serve them.
  CHECK(testing::http_request(p.proxy.port(), "GET", "/metrics").status == 404);
}

TEST_CASE("metrics: counters and histograms add up to the traffic served") {
  proxied_fake p;
  const std::string model = "metrics-model";
  const auto body = [&](bool stream, int events, int prompt) {
    chat_options o;
    o.model = model;
    o.stream = stream;
    o.fake = {{"events", events}, {"prompt_tokens", prompt}};
    return chat_body_from(o);
  };

  const auto res = testing::http_request(p.proxy.metrics_port(), "GET", "/metrics");
  REQUIRE(res.status == 200);
  CHECK(header(res, "content-type").starts_with("text/plain"));
  const auto before = parse_prometheus(res.body);
  CHECK_FALSE(metric_value(before, "tollgate_requests_total", {{"model", model}}).has_value());
  CHECK(metric_value(before, "tollgate_active_streams") == 0.0);

  // 3 plain + 2 streamed requests, 5 with events 4 and prompt 11 ...
  for (int i = 0; i < 5; ++i) {
    CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, body(i >= 3, 4, 11)).status == 200);
  }
  // ... one 429 from upstream and one invalid request.
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, [&] {
          chat_options o;
          o.model = model;
          o.fake = {{"status", 429}};
          return chat_body_from(o);
        }()).status == 429);
  CHECK(testing::http_request(p.proxy.port(), "POST", chat_path, R"({"model":"metrics-model","messages":[]})").status ==
        400);
  // Every request is accounted once its log line is out.
  REQUIRE(p.proxy.wait_for_log_records(7).size() == 7);

  const auto after = scrape(p.proxy);
  const std::map<std::string, std::string> ok{{"model", model}, {"route", chat_path}, {"status", "200"}};
  CHECK(metric_value(after, "tollgate_requests_total", ok) == 5.0);
  CHECK(metric_value(after, "tollgate_requests_total", {{"model", model}, {"route", chat_path}, {"status", "429"}}) ==
        1.0);
  CHECK(metric_value(after, "tollgate_requests_total", {{"route", chat_path}, {"status", "400"}}) == 1.0);
  CHECK(metric_value(after, "tollgate_tokens_total", {{"model", model}, {"kind", "prompt"}}) == 55.0);
  CHECK(metric_value(after, "tollgate_tokens_total", {{"model", model}, {"kind", "completion"}}) == 20.0);
  CHECK(metric_value(after, "tollgate_request_duration_seconds_count") == 7.0);
  CHECK(metric_value(after, "tollgate_request_duration_seconds_bucket", {{"le", "+Inf"}}) == 7.0);
  // Upstream answered 6 of them (the invalid one never left tollgate).
  CHECK(metric_value(after, "tollgate_upstream_ttfb_seconds_count") == 6.0);
  CHECK(metric_value(after, "tollgate_active_streams") == 0.0);
  CHECK(metric_value(after, "tollgate_upstream_errors_total", {{"reason", "connect_failed"}}).value_or(0) == 0.0);

  // Histogram buckets are cumulative.
  double previous = 0;
  int buckets = 0;
  for (const auto& s : after) {
    if (s.name != "tollgate_request_duration_seconds_bucket") continue;
    CHECK(s.value >= previous);
    previous = s.value;
    ++buckets;
  }
  CHECK(buckets >= 2);
}

TEST_CASE("metrics: tollgate_active_streams counts streams being relayed") {
  proxied_fake p;
  http_connection c(p.proxy.port());
  c.start("POST", chat_path, stream_body({{"events", 20}, {"delay_ms", 20}}));
  REQUIRE(c.read_header(5s).status == 200);
  REQUIRE(c.read_body_some(5s).has_value());
  CHECK(metric_value(scrape(p.proxy), "tollgate_active_streams") == 1.0);
  REQUIRE_NOTHROW(c.read_body(5s));
  CHECK(eventually([&] { return metric_value(scrape(p.proxy), "tollgate_active_streams") == 0.0; }, 2s));
}

TEST_CASE("metrics: upstream errors are counted by reason") {
  tollgate_process proxy({{"TOLLGATE_UPSTREAM_URL", "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1"}});
  for (int i = 0; i < 2; ++i) CHECK(testing::http_request(proxy.port(), "POST", chat_path, chat_body()).status == 502);
  REQUIRE(proxy.wait_for_log_records(2).size() == 2);
  const auto samples = scrape(proxy);
  CHECK(metric_value(samples, "tollgate_upstream_errors_total", {{"reason", "connect_failed"}}) == 2.0);
  CHECK(metric_value(samples, "tollgate_requests_total", {{"route", chat_path}, {"status", "502"}}) == 2.0);
  expect_clean_exit(proxy);
}

}  // namespace
}  // namespace tollgate::itest
