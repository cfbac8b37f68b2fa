#include "core/config.hpp"

#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <variant>

namespace tollgate::core {
namespace {

constexpr std::string_view api_key_env_setting = "TOLLGATE_UPSTREAM_API_KEY_ENV";

// Returns an error message, or "" when the value was applied.
using apply_fn = std::string (*)(config&, std::string_view);
using show_fn = std::string (*)(const config&);

struct entry {
  setting doc;
  apply_fn apply;
  show_fn show;
};

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string parse_bounded(std::string_view text, std::uint64_t min, std::uint64_t max, std::uint64_t& out) {
  auto value = parse_unsigned(text);
  if (!value) return "expected a whole number, got \"" + std::string(text) + "\"";
  if (*value < min || *value > max)
    return "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + std::string(text);
  out = *value;
  return {};
}

template <class Duration>
std::string parse_duration(std::string_view text, Duration& out, std::uint64_t max) {
  std::uint64_t value = 0;
  if (auto err = parse_bounded(text, 1, max, value); !err.empty()) return err;
  out = Duration(value);
  return {};
}

std::string parse_size(std::string_view text, std::size_t& out, std::uint64_t min, std::uint64_t max) {
  std::uint64_t value = 0;
  if (auto err = parse_bounded(text, min, max, value); !err.empty()) return err;
  out = static_cast<std::size_t>(value);
  return {};
}

std::string parse_bool(std::string_view text, bool& out) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") { out = true; return {}; }
  if (text == "false" || text == "0" || text == "no" || text == "off") { out = false; return {}; }
  return "expected true or false, got \"" + std::string(text) + "\"";
}

std::string parse_host_port(std::string_view text, host_port& out) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return "expected [ipv6]:port, got \"" + std::string(text) + "\"";
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return "expected host:port, got \"" + std::string(text) + "\"";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return "missing host in \"" + std::string(text) + "\"";
  std::uint64_t number = 0;
  if (auto err = parse_bounded(port, 0, 65535, number); !err.empty()) return "port " + err;
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(number);
  return {};
}

}  // namespace

std::string parse_upstream_url(std::string_view text, upstream_url& out) {
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return "not an absolute URL: \"" + std::string(text) + "\"";
  const auto& url = *parsed;
  upstream_url result;
  if (url.scheme() == "https") {
    result.tls = true;
  } else if (url.scheme() != "http") {
    return "scheme must be http or https, got \"" + std::string(url.scheme()) + "\"";
  }
  if (url.encoded_host().empty()) return "missing host in \"" + std::string(text) + "\"";
  if (url.has_query() || url.has_fragment()) return "must not have a query or fragment";
  if (url.has_userinfo()) return "must not carry credentials; use the API key variable";
  // Decoded, and without the brackets an IPv6 literal wears inside a URL.
  result.host = url.host_address();
  if (url.has_port()) {
    if (url.port_number() == 0) return "port must not be 0";
    result.port = url.port_number();
  } else {
    result.port = result.tls ? 443 : 80;
  }
  std::string_view path = url.encoded_path();
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  result.base_path = std::string(path);
  out = std::move(result);
  return {};
}

namespace {

std::string show_ms(std::chrono::milliseconds value) { return std::to_string(value.count()); }

std::string show_bool(bool value) { return value ? "true" : "false"; }

std::string parse_prices(std::string_view text, std::vector<price_entry>& out) {
  auto parsed = parse_price_overrides(text);
  if (const auto* err = std::get_if<price_parse_error>(&parsed)) return "\"" + err->item + "\": " + err->reason;
  out = std::get<std::vector<price_entry>>(std::move(parsed));
  return {};
}

std::string show_prices(const std::vector<price_entry>& prices) {
  std::string text;
  for (const auto& p : prices)
    text += (text.empty() ? "" : ",") + p.model + "=" + format_usd(p.price.input_per_mtok) + ":" +
            format_usd(p.price.output_per_mtok) + ":" + format_usd(p.price.cached_input_per_mtok);
  return text;
}

std::string parse_webhook(std::string_view text, std::optional<upstream_url>& out) {
  if (text.empty()) {
    out.reset();
    return {};
  }
  upstream_url url;
  if (auto err = parse_upstream_url(text, url); !err.empty()) return err;
  out = std::move(url);
  return {};
}

// Webhook URLs (Slack's, for one) carry their credential in the path, so only the origin is shown.
std::string show_webhook(const std::optional<upstream_url>& url) {
  if (!url) return "";
  upstream_url origin = *url;
  origin.base_path.clear();
  return origin.to_string() + (url->base_path.empty() ? "" : "/… (path hidden)");
}

std::string parse_token(std::string_view text, std::string& out) {
  // Compared with what follows "Bearer " in a header, where whitespace cannot survive.
  if (!std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c <= 0x7e; }))
    return "must be printable ASCII without spaces";
  out = std::string(text);
  return {};
}

std::string known_providers(const provider_set& set) {
  std::string names;
  for (const auto& p : set.providers) names += (names.empty() ? "" : ", ") + p.name;
  return names;
}

bool has_provider(const provider_set& set, std::string_view name) {
  return std::any_of(set.providers.begin(), set.providers.end(),
                     [&](const provider_config& p) { return p.name == name; });
}

// Settings that only make sense together, checked once every variable has parsed.
std::optional<config_error> cross_check(const config& cfg) {
  if (cfg.unthrottle_ratio_bp >= cfg.throttle_ratio_bp)
    return config_error{"TOLLGATE_UNTHROTTLE_RATIO",
                        "must be below TOLLGATE_THROTTLE_RATIO (" + format_ratio_bp(cfg.throttle_ratio_bp) +
                            ") so a throttled provider does not flap, got " + format_ratio_bp(cfg.unthrottle_ratio_bp)};
  // Not checked: TOLLGATE_REQUIRE_KEY without TOLLGATE_KEYS, or a key quota naming a fingerprint
  // TOLLGATE_KEYS lacks. Keys created through the admin API live in the ledger database, so
  // both are legitimate set-ups that only the proxy can tell apart from a mistake.
  for (const auto& rule : cfg.budgets)
    if (!has_provider(cfg.providers, rule.provider))
      return config_error{"TOLLGATE_BUDGETS", "unknown provider \"" + rule.provider +
                                                  "\" (known providers: " + known_providers(cfg.providers) + ")"};
  for (const auto& limit : cfg.provider_daily_quota)
    if (!has_provider(cfg.providers, limit.provider))
      return config_error{"TOLLGATE_PROVIDER_DAILY_QUOTA", "unknown provider \"" + limit.provider +
                                                               "\" (known providers: " +
                                                               known_providers(cfg.providers) + ")"};
  return std::nullopt;
}

// The one table. Defaults are strings so that --help prints exactly what the loader parses.
const std::vector<entry>& entries() {
  static const std::vector<entry> table = {
      {{"TOLLGATE_LISTEN", "127.0.0.1:8080",
        "Address for the OpenAI-compatible API (host:port or [ipv6]:port). Loopback by default: tollgate is a sidecar."},
       [](config& c, std::string_view v) { return parse_host_port(v, c.listen); },
       [](const config& c) { return c.listen.to_string(); }},
      {{"TOLLGATE_WORKERS", "0",
        "Worker threads, each with its own event loop and SO_REUSEPORT acceptor. 0 = one per CPU core."},
       [](config& c, std::string_view v) {
         std::uint64_t n = 0;
         auto err = parse_bounded(v, 0, 256, n);
         c.workers = static_cast<unsigned>(n);
         return err;
       },
       [](const config& c) { return std::to_string(c.workers); }},
      {{"TOLLGATE_METRICS_LISTEN", "0.0.0.0:9464",
        "Address of the operations listener: /metrics, /healthz, /readyz."},
       [](config& c, std::string_view v) { return parse_host_port(v, c.metrics_listen); },
       [](const config& c) { return c.metrics_listen.to_string(); }},
      {{"TOLLGATE_UPSTREAM_URL", "https://api.openai.com/v1",
        "Base URL of the OpenAI-compatible upstream (OpenAI, vLLM, Ollama /v1, ...). http or https."},
       [](config& c, std::string_view v) { return parse_upstream_url(v, c.upstream); },
       [](const config& c) { return c.upstream.to_string(); }},
      {{api_key_env_setting, "OPENAI_API_KEY",
        "Name of the environment variable holding the upstream API key. When that variable is unset, the "
        "client's own Authorization header is passed through."},
       [](config& c, std::string_view v) {
         if (v.empty()) return std::string("must name an environment variable");
         c.upstream_api_key_env = std::string(v);
         return std::string();
       },
       [](const config& c) { return c.upstream_api_key_env; }},
      {{"TOLLGATE_UPSTREAM_CONNECT_TIMEOUT_MS", "5000",
        "Time allowed for DNS, TCP connect and TLS handshake to the upstream."},
       [](config& c, std::string_view v) { return parse_duration(v, c.upstream_connect_timeout, 3'600'000); },
       [](const config& c) { return show_ms(c.upstream_connect_timeout); }},
      {{"TOLLGATE_UPSTREAM_TIMEOUT_MS", "300000",
        "Time allowed until the upstream's response header arrives; then 504. Non-streaming LLM calls send "
        "nothing until generation ends, so this is generous."},
       [](config& c, std::string_view v) { return parse_duration(v, c.upstream_timeout, 86'400'000); },
       [](const config& c) { return show_ms(c.upstream_timeout); }},
      {{"TOLLGATE_STREAM_IDLE_TIMEOUT_MS", "60000",
        "Longest silence allowed between two pieces of a response body (re-armed on every read). A streamed "
        "response that goes silent this long ends with an SSE error event."},
       [](config& c, std::string_view v) { return parse_duration(v, c.stream_idle_timeout, 86'400'000); },
       [](const config& c) { return show_ms(c.stream_idle_timeout); }},
      {{"TOLLGATE_CLIENT_IDLE_TIMEOUT_MS", "60000",
        "How long an idle keep-alive client connection is kept, and how long a client may refuse to read "
        "before tollgate gives up on it."},
       [](config& c, std::string_view v) { return parse_duration(v, c.client_idle_timeout, 86'400'000); },
       [](const config& c) { return show_ms(c.client_idle_timeout); }},
      {{"TOLLGATE_DRAIN_TIMEOUT_S", "20",
        "On SIGTERM: how long in-flight requests may take to finish before tollgate exits anyway."},
       [](config& c, std::string_view v) { return parse_duration(v, c.drain_timeout, 3600); },
       [](const config& c) { return std::to_string(c.drain_timeout.count()); }},
      {{"TOLLGATE_MAX_BODY_BYTES", "4194304", "Largest accepted request body; larger ones get 413."},
       [](config& c, std::string_view v) { return parse_size(v, c.max_body_bytes, 1024, 1ULL << 30); },
       [](const config& c) { return std::to_string(c.max_body_bytes); }},
      {{"TOLLGATE_MAX_SSE_EVENT_BYTES", "1048576",
        "Largest single server-sent event relayed; a bigger one is dropped and counted."},
       [](config& c, std::string_view v) { return parse_size(v, c.max_sse_event_bytes, 1024, 1ULL << 30); },
       [](const config& c) { return std::to_string(c.max_sse_event_bytes); }},
      {{"TOLLGATE_UPSTREAM_POOL_SIZE", "64", "Idle keep-alive upstream connections kept per worker."},
       [](config& c, std::string_view v) { return parse_size(v, c.upstream_pool_size, 0, 100'000); },
       [](const config& c) { return std::to_string(c.upstream_pool_size); }},
      {{"TOLLGATE_PROVIDERS", "",
        "Comma-separated provider instances, each configured by TOLLGATE_PROVIDER_<NAME>_TYPE (openai, "
        "anthropic, gemini, ollama, mock), _BASE_URL, _API_KEY_ENV, _MODELS, _TIMEOUT_MS, _TOKEN_LATENCY_MS (mock). "
        "Empty: one openai provider from TOLLGATE_UPSTREAM_URL, or the built-in mock when neither that URL nor an "
        "API key is set."},
       [](config&, std::string_view) { return std::string(); },  // parsed with the providers below
       [](const config& c) {
         std::string names;
         for (const auto& p : c.providers.providers) names += (names.empty() ? "" : ",") + p.name;
         return names;
       }},
      {{"TOLLGATE_MODEL_ALIASES", "",
        "Comma-separated alias=target pairs, e.g. fast=local/llama3.2,smart=anthropic/claude-sonnet-4-5."},
       [](config&, std::string_view) { return std::string(); },  // parsed with the providers below
       [](const config& c) {
         std::string text;
         for (const auto& a : c.providers.aliases) text += (text.empty() ? "" : ",") + a.name + "=" + a.target;
         return text;
       }},
      {{"TOLLGATE_FALLBACKS", "",
        "Semicolon-separated fallback chains model=target|target, tried in order when the model's provider fails "
        "before the first byte or is skipped (unhealthy, throttled, over quota), e.g. "
        "gpt-4o=anthropic/claude-sonnet-4-5|gemini/gemini-2.5-pro;fast=local/llama3.2. model is matched exactly as "
        "the client sends it."},
       [](config&, std::string_view) { return std::string(); },  // parsed with the providers below
       [](const config& c) {
         std::string text;
         for (const auto& f : c.providers.fallbacks) {
           text += (text.empty() ? "" : ";") + f.model + "=";
           for (std::size_t i = 0; i < f.targets.size(); ++i) text += (i ? "|" : "") + f.targets[i];
         }
         return text;
       }},
      {{"TOLLGATE_DEFAULT_MAX_TOKENS", "4096",
        "max_tokens sent to providers that require one (Anthropic) when the request has none."},
       [](config& c, std::string_view v) {
         std::uint64_t n = 0;
         auto err = parse_bounded(v, 1, 1'000'000, n);
         c.default_max_tokens = static_cast<std::uint32_t>(n);
         return err;
       },
       [](const config& c) { return std::to_string(c.default_max_tokens); }},
      {{"TOLLGATE_ACCESS_LOG", "true", "One JSON line per request on stdout."},
       [](config& c, std::string_view v) { return parse_bool(v, c.access_log); },
       [](const config& c) { return std::string(c.access_log ? "true" : "false"); }},
      {{"TOLLGATE_DB_PATH", "./data/tollgate.db",
        "SQLite database of the usage ledger: every request's tokens and cost, from which quota and budget counters "
        "are restored at start-up."},
       [](config& c, std::string_view v) {
         if (v.empty()) return std::string("must be a file path");
         c.db_path = std::string(v);
         return std::string();
       },
       [](const config& c) { return c.db_path; }},
      {{"TOLLGATE_LEDGER_FLUSH_MS", "50",
        "Longest time a finished request waits in memory before the ledger writer commits it (group commit)."},
       [](config& c, std::string_view v) { return parse_duration(v, c.ledger_flush_interval, 60'000); },
       [](const config& c) { return show_ms(c.ledger_flush_interval); }},
      {{"TOLLGATE_LEDGER_FAIL_OPEN", "false",
        "When the ledger database cannot be opened or written, requests that need quota/budget enforcement get 503 "
        "(false, fail closed) or pass unenforced (true)."},
       [](config& c, std::string_view v) { return parse_bool(v, c.ledger_fail_open); },
       [](const config& c) { return show_bool(c.ledger_fail_open); }},
      {{"TOLLGATE_PRICES", "",
        "Price overrides on top of the built-in table: model=input:output[:cached],... in USD per 1M tokens, e.g. "
        "gpt-4o=2.5:10:1.25. Without a cached rate, cache reads cost the input rate."},
       [](config& c, std::string_view v) { return parse_prices(v, c.price_overrides); },
       [](const config& c) { return show_prices(c.price_overrides); }},
      {{"TOLLGATE_PRICES_FILE", "",
        "JSON file of price overrides, read at start-up. Empty: none."},
       [](config& c, std::string_view v) {
         c.prices_file = std::string(v);
         return std::string();
       },
       [](const config& c) { return c.prices_file; }},
      {{"TOLLGATE_KEYS", "",
        "Virtual keys callers present as Bearer token or x-api-key, ';'-separated: key[,department=a|b][,user=x]"
        "[,agent=y][,name=z]. key is the secret (8+ chars) or sha256:<64 hex> of it, so the plaintext need not be "
        "in the environment. A key's attributes override the x-tollgate-* headers. Shown by fingerprint (tgk_...)."},
       [](config& c, std::string_view v) { return parse_virtual_keys(v, c.keys); },
       [](const config& c) { return format_virtual_keys(c.keys); }},
      {{"TOLLGATE_REQUIRE_KEY", "false",
        "true: every API request must present a key from TOLLGATE_KEYS and is refused otherwise. false: unknown or "
        "missing keys are served as anonymous callers."},
       [](config& c, std::string_view v) { return parse_bool(v, c.require_key); },
       [](const config& c) { return show_bool(c.require_key); }},
      {{"TOLLGATE_TZ", "UTC",
        "Time zone whose calendar days and months quotas and budgets follow: UTC, an offset (+05:30, UTC-3) or a "
        "tz database name (Europe/Berlin)."},
       [](config& c, std::string_view v) { return parse_time_zone(v, c.time_zone); },
       [](const config& c) { return c.time_zone.name; }},
      {{"TOLLGATE_QUOTAS", "",
        "Caller quotas, ';'-separated scope:name:limit,... with scope department, user or key (a tgk_ fingerprint) "
        "and limits daily_tokens, monthly_tokens, daily_usd, monthly_usd, models=a|b|prefix*, e.g. "
        "department:eng:daily_usd=50,monthly_usd=1000;user:alice:daily_tokens=200000. Over quota: 429."},
       [](config& c, std::string_view v) { return parse_quota_rules(v, c.quotas); },
       [](const config& c) { return format_quota_rules(c.quotas); }},
      {{"TOLLGATE_BUDGETS", "",
        "Monthly (and optional daily) USD budget per provider: provider=monthly[:daily],..., e.g. "
        "openai=1000,anthropic=500:25. Drives the cost throttle; the daily amount is a hard cap."},
       [](config& c, std::string_view v) { return parse_budget_rules(v, c.budgets); },
       [](const config& c) { return format_budget_rules(c.budgets); }},
      {{"TOLLGATE_THROTTLE_EVAL_INTERVAL_S", "60",
        "How often projected month-end spend is compared with each provider's budget."},
       [](config& c, std::string_view v) { return parse_duration(v, c.throttle_eval_interval, 86'400); },
       [](const config& c) { return std::to_string(c.throttle_eval_interval.count()); }},
      {{"TOLLGATE_THROTTLE_RATIO", "1.10",
        "A provider is throttled once its projected month-end spend reaches this multiple of its monthly budget "
        "(up to 4 decimals)."},
       [](config& c, std::string_view v) { return parse_ratio_bp(v, c.throttle_ratio_bp); },
       [](const config& c) { return format_ratio_bp(c.throttle_ratio_bp); }},
      {{"TOLLGATE_UNTHROTTLE_RATIO", "0.95",
        "A throttled provider is released once its projection falls below this multiple of its budget; must be "
        "below TOLLGATE_THROTTLE_RATIO so the state does not flap."},
       [](config& c, std::string_view v) { return parse_ratio_bp(v, c.unthrottle_ratio_bp); },
       [](const config& c) { return format_ratio_bp(c.unthrottle_ratio_bp); }},
      {{"TOLLGATE_COST_THROTTLE_ENABLED", "false",
        "true: throttled providers are skipped by routing (fallbacks take over). false: observe mode, which "
        "computes, logs and exports throttle state but never changes routing."},
       [](config& c, std::string_view v) { return parse_bool(v, c.cost_throttle_enabled); },
       [](const config& c) { return show_bool(c.cost_throttle_enabled); }},
      {{"TOLLGATE_PROVIDER_DAILY_QUOTA", "",
        "Requests per calendar day per provider, e.g. gemini=1000,openai=50000 (free tiers); once used up the "
        "provider is skipped until local midnight."},
       [](config& c, std::string_view v) { return parse_provider_request_limits(v, c.provider_daily_quota); },
       [](const config& c) { return format_provider_request_limits(c.provider_daily_quota); }},
      {{"TOLLGATE_ALERT_WEBHOOK_URL", "",
        "http(s) URL that receives budget alerts (throttle state changes) as JSON POSTs. Empty: no webhook."},
       [](config& c, std::string_view v) { return parse_webhook(v, c.alert_webhook); },
       [](const config& c) { return show_webhook(c.alert_webhook); }},
      {{"TOLLGATE_ADMIN_TOKEN", "",
        "Bearer token for /admin/ on the metrics listener; the admin API is disabled when unset. Never logged."},
       [](config& c, std::string_view v) { return parse_token(v, c.admin_token); },
       [](const config& c) { return mask_secret(c.admin_token); }},
  };
  return table;
}

}  // namespace

std::string host_port::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string upstream_url::to_string() const {
  std::string text = tls ? "https://" : "http://";
  bool ipv6 = host.find(':') != std::string::npos;
  if (ipv6) text += '[';
  text += host;
  if (ipv6) text += ']';
  if (port != (tls ? 443 : 80)) text += ":" + std::to_string(port);
  return text + base_path;
}

std::span<const setting> settings() {
  static const std::vector<setting> docs = [] {
    std::vector<setting> out;
    for (const auto& e : entries()) out.push_back(e.doc);
    return out;
  }();
  return docs;
}

boost::system::result<config, config_error> load_config(const env_lookup& env, unsigned cpu_count) {
  config cfg;
  for (const auto& e : entries()) {
    auto value = env(e.doc.name);
    std::string text = value ? *value : std::string(e.doc.default_value);
    if (auto err = e.apply(cfg, text); !err.empty())
      return config_error{std::string(e.doc.name), std::move(err)};
  }
  if (cfg.workers == 0) cfg.workers = std::max(1u, cpu_count);
  if (auto key = env(cfg.upstream_api_key_env)) cfg.upstream_api_key = *key;

  provider_defaults defaults{cfg.upstream, env("TOLLGATE_UPSTREAM_URL").has_value(), cfg.upstream_api_key_env,
                             cfg.upstream_api_key, cfg.upstream_timeout};
  auto providers = load_providers(env, defaults);
  if (!providers) return providers.error();
  cfg.providers = std::move(*providers);
  if (auto err = cross_check(cfg)) return std::move(*err);
  return cfg;
}

std::vector<std::string> describe(const config& cfg) {
  std::vector<std::string> lines;
  for (const auto& e : entries()) lines.push_back(std::string(e.doc.name) + "=" + e.show(cfg));
  lines.push_back(cfg.upstream_api_key_env + "=" + mask_secret(cfg.upstream_api_key));
  for (const auto& p : cfg.providers.providers) {
    std::string line = "provider " + p.name + ": type=" + std::string(provider_type_name(p.type));
    if (p.type != provider_type::mock) line += " base_url=" + p.base_url.to_string();
    if (!p.api_key_env.empty()) line += " " + p.api_key_env + "=" + mask_secret(p.api_key);
    line += " models=";
    if (p.models.empty()) line += "(any)";
    for (std::size_t i = 0; i < p.models.size(); ++i) line += (i ? "," : "") + p.models[i];
    line += " timeout_ms=" + std::to_string(p.timeout.count());
    if (cfg.providers.implicit_mock) line += " (built-in: no provider or API key configured)";
    lines.push_back(std::move(line));
  }
  return lines;
}

std::vector<std::string> unknown_variables(std::span<const std::string> environment_names) {
  std::vector<std::string> unknown;
  for (const auto& name : environment_names) {
    if (!name.starts_with("TOLLGATE_")) continue;
    bool known = std::any_of(entries().begin(), entries().end(),
                             [&](const entry& e) { return e.doc.name == name; });
    if (!known && name.starts_with("TOLLGATE_PROVIDER_")) {
      known = std::any_of(provider_variable_suffixes().begin(), provider_variable_suffixes().end(),
                          [&](std::string_view suffix) { return name.ends_with("_" + std::string(suffix)); });
    }
    if (!known) unknown.push_back(name);
  }
  return unknown;
}

std::string mask_secret(std::string_view secret) {
  if (secret.empty()) return "(unset)";
  std::string masked;
  if (secret.size() >= 12) {
    masked = std::string(secret.substr(0, 3)) + "…" + std::string(secret.substr(secret.size() - 4));
  } else {
    masked = "…";
  }
  return masked + " (" + std::to_string(secret.size()) + " chars)";
}

}  // namespace tollgate::core
