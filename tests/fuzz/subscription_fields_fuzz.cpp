// Fuzz target: an arbitrary JSON body applied to a subscription as on create and as on PATCH.
// Properties: no crash; a refused body leaves the subscription exactly as it was; an accepted
// one yields a subscription whose every field is within its documented bounds, which survives
// the stored-record round trip, and whose API form, sent back, means the same subscription.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/api/api_json.h"
#include "relay/api/request_parsing.h"
#include "relay/api/subscription_fields.h"
#include "relay/model/event_type.h"
#include "storage/records.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using relay::fuzz::check;
using nlohmann::json;

relay::Subscription base() {
  relay::Subscription s;
  s.id = "sub_00000000000000000000000000000001";
  s.url = "https://receiver.example/hook?token=t";
  s.secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
  s.retry.max_delay_ms = 60'000;
  s.created_at = 1;
  s.updated_at = 2;
  return s;
}

void check_bounds(const relay::Subscription& s) {
  check(!s.event_types.empty() && s.event_types.size() <= 64, "1-64 event types");
  for (const auto& pattern : s.event_types) check(relay::is_valid_event_pattern(pattern), "valid patterns");
  check(s.headers.size() <= 32, "at most 32 headers");
  check(s.max_in_flight >= 1 && s.max_in_flight <= 10'000, "max_in_flight in 1..10000");
  check(s.rate_limit_per_second <= 1'000'000, "rate limit at most 1000000");
  check(s.description.size() <= 1024, "description at most 1024 characters");
  for (const auto& v : {s.retry.initial_ms, s.retry.max_delay_ms, s.retry.window_ms, s.timeout_ms}) {
    check(!v || *v > 0, "durations are positive");
  }
  check(!s.timeout_ms || *s.timeout_ms <= 300'000, "timeout at most 5m");
  check(!s.disable_after_ms || *s.disable_after_ms >= 0, "disable_after is not negative");
  check(!(s.retry.initial_ms && s.retry.max_delay_ms) || *s.retry.initial_ms <= *s.retry.max_delay_ms,
        "retry.initial at most retry.max_delay");
}

void check_api_round_trip(const relay::Subscription& s) {
  const json api = relay::to_api(s);
  (void)api.dump(-1, ' ', false, json::error_handler_t::replace);
  json input;
  for (const char* field : {"url", "event_types", "secret", "signature", "headers", "enabled", "description", "retry",
                            "timeout", "max_in_flight", "rate_limit_per_second", "disable_after"}) {
    input[field] = api[field];
  }
  if (s.secret.empty()) input.erase("secret");
  relay::Subscription again = base();
  again.previous_secret = s.previous_secret;
  again.previous_secret_expires_at = s.previous_secret_expires_at;
  const relay::Status status = relay::apply_subscription_fields(input, again, false);
  check(status.ok(), "the API form is valid input");
  check(relay::records::to_record(again) == relay::records::to_record(s), "the API form means the same subscription");
}

void apply(const json& body, bool creating) {
  const relay::Subscription original = base();
  relay::Subscription target = original;
  const relay::Status status = relay::apply_subscription_fields(body, target, creating);
  if (!status.ok()) {
    check(status.error().code == relay::Errc::invalid_field, "errors are invalid_field");
    check(relay::records::to_record(target) == relay::records::to_record(original), "a refused body changes nothing");
    return;
  }
  check_bounds(target);
  const auto decoded = relay::records::decode_subscription(relay::records::encode_record(target));
  check(decoded.has_value(), "the stored subscription decodes");
  check(relay::records::to_record(*decoded) == relay::records::to_record(target), "the stored subscription round-trips");
  check_api_round_trip(target);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const json body = json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return 0;
  apply(body, /*creating=*/true);
  apply(body, /*creating=*/false);
  return 0;
}
