#include "relay/api/subscription_fields.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "relay/api/request_parsing.h"
#include "relay/core/duration.h"
#include "relay/delivery/signature.h"
#include "relay/model/event_type.h"
#include "relay/routing/payload_filter.h"

namespace relay {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxDescriptionLength = 1024;
constexpr std::size_t kMaxEventTypesPerSubscription = 64;
constexpr std::uint32_t kMaxPerSubscriptionInFlight = 10'000;

bool is_token_char(char c) {
  // RFC 9110 tchar
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_header_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), is_token_char);
}

bool is_header_value(std::string_view value) {
  return value.size() <= 4096 &&
         std::none_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Headers relay sets itself; a subscription may not override them.
bool is_reserved_header(std::string_view name) {
  const std::string n = lower(name);
  return n == "content-type" || n == "content-length" || n == "host" || n == "user-agent" || n == "connection" ||
         n == "transfer-encoding" || n.rfind("webhook-", 0) == 0 || n.rfind("x-relay-", 0) == 0;
}

Result<std::int64_t> duration_field(const json& value, const std::string& field) {
  if (!value.is_string()) return field_error(field, "must be a duration string such as \"5s\"");
  const auto ms = parse_duration_ms(value.get<std::string>());
  if (!ms || *ms <= 0)
    return field_error(field,
                       "must be a positive duration such as \"500ms\", "
                       "\"5s\", \"10m\", \"1h\"");
  return *ms;
}

Status validate_url(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return field_error("url", "must be an absolute http or https URL");
  const std::string scheme = lower(parsed->scheme());
  if (scheme != "http" && scheme != "https") return field_error("url", "must use http or https");
  if (parsed->encoded_host().empty()) return field_error("url", "must name a host");
  if (parsed->has_userinfo()) return field_error("url", "must not carry credentials");
  if (parsed->has_fragment()) return field_error("url", "must not have a fragment");
  return Ok{};
}

Status apply_url(const json& value, Subscription& sub, bool) {
  if (!value.is_string()) return field_error("url", "must be a string");
  sub.url = value.get<std::string>();
  return validate_url(sub.url);
}

Status apply_event_types(const json& value, Subscription& sub, bool) {
  if (!value.is_array() || value.empty() || value.size() > kMaxEventTypesPerSubscription) {
    return field_error("event_types", "must be a non-empty array of at most 64 patterns");
  }
  std::vector<std::string> patterns;
  for (const auto& pattern : value) {
    if (!pattern.is_string() || !is_valid_event_pattern(pattern.get<std::string>())) {
      return field_error("event_types",
                         "holds an invalid pattern: use an exact type, "
                         "\"*\" or a prefix ending in \".*\"");
    }
    patterns.push_back(pattern.get<std::string>());
  }
  sub.event_types = std::move(patterns);
  return Ok{};
}

Status apply_tenant(const json& value, Subscription& sub, bool) {
  if (value.is_null()) {
    sub.tenant.clear();
    return Ok{};
  }
  if (!value.is_string() || !is_valid_tenant(value.get_ref<const std::string&>())) {
    return field_error("tenant", "must be null or 1-128 characters of [A-Za-z0-9._:-]");
  }
  sub.tenant = value.get<std::string>();
  return Ok{};
}

Status apply_filter(const json& value, Subscription& sub, bool) {
  if (value.is_null()) {
    sub.filter.clear();
    return Ok{};
  }
  if (!value.is_object()) return field_error("filter", "must be null or an object");
  // Compiled here only to refuse a bad filter with its path; the registry compiles the stored text.
  if (auto compiled = PayloadFilter::compile(value); !compiled) return compiled.error();
  sub.filter = value.dump();
  return Ok{};
}

Status apply_ordering(const json& value, Subscription& sub, bool) {
  const auto ordering = value.is_string() ? parse_ordering(value.get_ref<const std::string&>()) : std::nullopt;
  if (!ordering) return field_error("ordering", "must be \"none\" or \"key\"");
  sub.ordering = *ordering;
  return Ok{};
}

Status apply_coalesce(const json& value, Subscription& sub, bool) {
  if (!value.is_boolean()) return field_error("coalesce", "must be true or false");
  sub.coalesce = value.get<bool>();
  return Ok{};
}

Status apply_secret(const json& value, Subscription& sub, bool creating) {
  if (value.is_null() && creating) return Ok{};  // the handler generates one
  if (auto valid = validate_secret(value); !valid) return valid;
  sub.secret = value.get<std::string>();
  return Ok{};
}

Status apply_signature(const json& value, Subscription& sub, bool) {
  if (!value.is_object()) return field_error("signature", "must be an object");
  for (const auto& [key, member] : value.items()) {
    if (key == "scheme") {
      if (member == "standard")
        sub.signature_scheme = SignatureScheme::standard;
      else if (member == "hmac-sha256-hex")
        sub.signature_scheme = SignatureScheme::hmac_sha256_hex;
      else
        return field_error("signature.scheme", "must be \"standard\" or \"hmac-sha256-hex\"");
    } else if (key == "header") {
      if (!member.is_string() || !is_header_name(member.get<std::string>()) ||
          is_reserved_header(member.get<std::string>())) {
        return field_error("signature.header", "must be a valid header name that relay does not set itself");
      }
      sub.signature_header = member.get<std::string>();
    } else {
      return field_error("signature." + key, "is not a known field");
    }
  }
  return Ok{};
}

Status apply_headers(const json& value, Subscription& sub, bool) {
  if (!value.is_object() || value.size() > 32) return field_error("headers", "must be an object of at most 32 headers");
  std::map<std::string, std::string> headers;
  for (const auto& [name, header_value] : value.items()) {
    if (!is_header_name(name) || is_reserved_header(name)) {
      return field_error("headers", "has an invalid or reserved header name '" + name + "'");
    }
    if (!header_value.is_string() || !is_header_value(header_value.get<std::string>())) {
      return field_error("headers", "values must be strings without line breaks");
    }
    headers[name] = header_value.get<std::string>();
  }
  sub.headers = std::move(headers);
  return Ok{};
}

Status apply_enabled(const json& value, Subscription& sub, bool) {
  if (!value.is_boolean()) return field_error("enabled", "must be true or false");
  sub.enabled = value.get<bool>();
  return Ok{};
}

Status apply_description(const json& value, Subscription& sub, bool) {
  if (!value.is_string() || value.get<std::string>().size() > kMaxDescriptionLength) {
    return field_error("description", "must be a string of at most 1024 characters");
  }
  sub.description = value.get<std::string>();
  return Ok{};
}

Status apply_retry(const json& value, Subscription& sub, bool) {
  if (!value.is_object()) return field_error("retry", "must be an object");
  for (const auto& [key, member] : value.items()) {
    std::optional<std::int64_t>* slot = key == "initial"     ? &sub.retry.initial_ms
                                        : key == "max_delay" ? &sub.retry.max_delay_ms
                                        : key == "window"    ? &sub.retry.window_ms
                                                             : nullptr;
    if (slot == nullptr) return field_error("retry." + key, "is not a known field");
    if (member.is_null()) {
      slot->reset();
      continue;
    }
    auto ms = duration_field(member, "retry." + key);
    if (!ms) return ms.error();
    *slot = *ms;
  }
  return Ok{};
}

Status apply_timeout(const json& value, Subscription& sub, bool) {
  if (value.is_null()) {
    sub.timeout_ms.reset();
    return Ok{};
  }
  auto ms = duration_field(value, "timeout");
  if (!ms) return ms.error();
  if (*ms > 300'000) return field_error("timeout", "must be at most 5m");
  sub.timeout_ms = *ms;
  return Ok{};
}

Status apply_max_in_flight(const json& value, Subscription& sub, bool) {
  if (!value.is_number_integer() || value.get<std::int64_t>() < 1 ||
      value.get<std::int64_t>() > kMaxPerSubscriptionInFlight) {
    return field_error("max_in_flight", "must be an integer from 1 to 10000");
  }
  sub.max_in_flight = value.get<std::uint32_t>();
  return Ok{};
}

Status apply_rate_limit(const json& value, Subscription& sub, bool) {
  if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > 1'000'000) {
    return field_error("rate_limit_per_second", "must be an integer from 0 (unlimited) to 1000000");
  }
  sub.rate_limit_per_second = value.get<std::uint32_t>();
  return Ok{};
}

Status apply_disable_after(const json& value, Subscription& sub, bool) {
  if (value.is_null()) {
    sub.disable_after_ms.reset();
    return Ok{};
  }
  const auto ms = value.is_string() ? parse_duration_ms(value.get_ref<const std::string&>()) : std::nullopt;
  if (!ms) return field_error("disable_after", "must be null or a duration such as \"5d\" or \"12h\" (\"0s\": never)");
  sub.disable_after_ms = *ms;
  return Ok{};
}

// A top-level field of a subscription body and how its value applies (`creating`: POST, where
// an absent or null value may get a default).
struct Field {
  std::string_view name;
  Status (*apply)(const json& value, Subscription& sub, bool creating);
};

constexpr std::array kFields{
    Field{"url", apply_url},
    Field{"event_types", apply_event_types},
    Field{"tenant", apply_tenant},
    Field{"filter", apply_filter},
    Field{"ordering", apply_ordering},
    Field{"coalesce", apply_coalesce},
    Field{"secret", apply_secret},
    Field{"signature", apply_signature},
    Field{"headers", apply_headers},
    Field{"enabled", apply_enabled},
    Field{"description", apply_description},
    Field{"retry", apply_retry},
    Field{"timeout", apply_timeout},
    Field{"max_in_flight", apply_max_in_flight},
    Field{"rate_limit_per_second", apply_rate_limit},
    Field{"disable_after", apply_disable_after},
};

}  // namespace

Status validate_secret(const json& value) {
  if (!value.is_string()) return field_error("secret", "must be a string");
  const std::string& secret = value.get_ref<const std::string&>();
  const auto key_bytes = secret_key_bytes(secret);
  if (secret.size() < 8 || secret.size() > 256 || !key_bytes || key_bytes->size() < 8) {
    return field_error("secret",
                       "must be 8-256 characters (a whsec_ secret must be "
                       "valid base64 of at least 8 bytes)");
  }
  return Ok{};
}

Status apply_subscription_fields(const json& body, Subscription& target, bool creating) {
  Subscription sub = target;
  if (creating && !body.contains("url")) return field_error("url", "is required");
  for (const auto& item : body.items()) {
    // Not a structured binding: clang 14 (the libFuzzer build) cannot capture one in a lambda.
    const std::string& key = item.key();
    const auto field = std::find_if(kFields.begin(), kFields.end(), [&key](const Field& f) { return f.name == key; });
    if (field == kFields.end()) return field_error(key, "is not a known subscription field");
    if (auto applied = field->apply(item.value(), sub, creating); !applied) return applied;
  }
  if (sub.retry.initial_ms && sub.retry.max_delay_ms && *sub.retry.initial_ms > *sub.retry.max_delay_ms) {
    return field_error("retry.initial", "must not exceed retry.max_delay");
  }
  if (sub.coalesce && sub.ordering != Ordering::key) {
    return field_error("coalesce", "needs \"ordering\": \"key\" (coalescing works per ordering key)");
  }
  target = std::move(sub);
  return Ok{};
}

}  // namespace relay
