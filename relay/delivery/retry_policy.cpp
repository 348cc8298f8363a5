#include "relay/delivery/retry_policy.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

namespace relay {

namespace {

constexpr std::int64_t kMaxMillis = std::numeric_limits<std::int64_t>::max();
constexpr double kJitterSpread = 0.4;  // factor 1 +- 20%

std::int64_t saturating_add(std::int64_t a, std::int64_t b) {
  std::int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) return b > 0 ? kMaxMillis : std::numeric_limits<std::int64_t>::min();
  return sum;
}

std::int64_t seconds_to_millis(std::int64_t seconds) {
  return seconds > kMaxMillis / 1000 ? kMaxMillis : seconds * 1000;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim_ows(std::string_view text) {
  const auto ows = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && ows(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

RetryPolicy effective_policy(const RetryPolicy& defaults, const RetryOverrides& sub_overrides) {
  RetryPolicy policy = defaults;
  if (sub_overrides.initial_ms) policy.initial_ms = *sub_overrides.initial_ms;
  if (sub_overrides.max_delay_ms) policy.max_delay_ms = *sub_overrides.max_delay_ms;
  if (sub_overrides.window_ms) policy.window_ms = *sub_overrides.window_ms;
  return policy;
}

std::int64_t backoff_delay_ms(const RetryPolicy& policy, std::uint32_t attempts_made, double jitter_unit) {
  if (attempts_made == 0) return 0;
  const std::int64_t initial = std::max<std::int64_t>(policy.initial_ms, 0);
  const std::int64_t cap = std::max<std::int64_t>(policy.max_delay_ms, 0);
  const std::uint32_t doublings = attempts_made - 1;
  // initial * 2^doublings > cap exactly when initial > cap >> doublings; testing it that way
  // never shifts a bit out.
  const std::int64_t base = doublings >= 63 || initial > (cap >> doublings) ? cap : initial << doublings;

  if (!(jitter_unit >= 0.0)) jitter_unit = 0.0;  // also catches NaN
  if (jitter_unit >= 1.0) jitter_unit = std::nextafter(1.0, 0.0);
  // Only the offset goes through a double (at most 20% of an int64, so it fits): base itself stays
  // exact, whatever its size.
  const double offset = static_cast<double>(base) * kJitterSpread * (jitter_unit - 0.5);
  return saturating_add(base, std::llround(offset));
}

std::optional<std::int64_t> parse_retry_after_ms(std::string_view value, UnixMillis now) {
  value = trim_ows(value);
  if (value.empty()) return std::nullopt;
  if (is_digit(value.front())) {
    if (!std::all_of(value.begin(), value.end(), is_digit)) return std::nullopt;
    std::int64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kMaxMillis;
    if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
    return seconds_to_millis(seconds);
  }
  // Every HTTP-date form starts with a day name, so a leading sign or digit never reaches here.
  if (!std::isalpha(static_cast<unsigned char>(value.front()))) return std::nullopt;
  const std::string date(value);
  const time_t at = curl_getdate(date.c_str(), nullptr);
  if (at == -1) return std::nullopt;
  const std::int64_t at_ms = seconds_to_millis(static_cast<std::int64_t>(at));
  if (at_ms <= now) return 0;
  std::int64_t delay = 0;
  if (__builtin_sub_overflow(at_ms, now, &delay)) return kMaxMillis;
  return delay;
}

RetryDecision decide_after_attempt(const RetryPolicy& policy, UnixMillis window_start, std::uint32_t attempts_made,
                                   UnixMillis attempt_finished_at, const AttemptReply& reply, double jitter_unit) {
  const int status = reply.http_status;
  if (status >= 200 && status <= 299) return {RetryDecision::succeeded, 0};
  if (status == 410) return {RetryDecision::dead, 0};

  UnixMillis next = saturating_add(attempt_finished_at, backoff_delay_ms(policy, attempts_made, jitter_unit));
  if ((status == 429 || status == 503) && reply.retry_after_ms) {
    next = std::max(next, saturating_add(attempt_finished_at, std::max<std::int64_t>(*reply.retry_after_ms, 0)));
  }
  if (next > saturating_add(window_start, std::max<std::int64_t>(policy.window_ms, 0))) {
    return {RetryDecision::dead, 0};
  }
  return {RetryDecision::retry, next};
}

}  // namespace relay
