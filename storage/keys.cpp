#include "storage/keys.h"

#include <random>

namespace relay::keys {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void append_be(std::string& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

std::uint64_t read_be(std::string_view bytes, std::size_t n) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

}  // namespace

IdGenerator::IdGenerator(const Clock& clock, std::uint32_t instance_id)
    : clock_(clock), instance_id_(instance_id), counter_(std::random_device{}() & 0xffffff) {}

std::string IdGenerator::next(std::string_view prefix) {
  std::string raw_id;
  raw_id.reserve(kIdBytes);
  append_be(raw_id, static_cast<std::uint64_t>(clock_.now_ms()), 6);
  append_be(raw_id, instance_id_, 4);
  append_be(raw_id, counter_.fetch_add(1, std::memory_order_relaxed), 6);
  return format_id(prefix, raw_id);
}

std::optional<RawId> parse_id(std::string_view text, std::string_view prefix) {
  if (text.size() != prefix.size() + 2 * kIdBytes || text.substr(0, prefix.size()) != prefix) return std::nullopt;
  RawId out{};
  const std::string_view hex = text.substr(prefix.size());
  for (std::size_t i = 0; i < kIdBytes; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<char>(hi << 4 | lo);
  }
  return out;
}

std::string format_id(std::string_view prefix, std::string_view raw_id) {
  std::string out(prefix);
  out.reserve(prefix.size() + 2 * raw_id.size());
  for (char c : raw_id) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

UnixMillis id_time(std::string_view text) {
  const auto underscore = text.find('_');
  if (underscore == std::string_view::npos) return 0;
  const auto parsed = parse_id(text, text.substr(0, underscore + 1));
  if (!parsed) return 0;
  return static_cast<UnixMillis>(read_be(std::string_view(parsed->data(), parsed->size()), 6));
}

std::optional<std::uint32_t> id_instance(std::string_view text, std::string_view prefix) {
  const auto parsed = parse_id(text, prefix);
  if (!parsed) return std::nullopt;
  return static_cast<std::uint32_t>(read_be(std::string_view(parsed->data() + 6, 4), 4));
}

void append_u64(std::string& out, std::uint64_t value) { append_be(out, value, 8); }
void append_u32(std::string& out, std::uint32_t value) { append_be(out, value, 4); }
std::uint64_t read_u64(std::string_view bytes) { return read_be(bytes, 8); }
std::uint32_t read_u32(std::string_view bytes) { return static_cast<std::uint32_t>(read_be(bytes, 4)); }

std::string raw(std::string_view id) {
  const auto underscore = id.find('_');
  const auto parsed = parse_id(id, id.substr(0, underscore == std::string_view::npos ? 0 : underscore + 1));
  if (!parsed) return std::string(id);  // never produced by relay; keeps keys distinct anyway
  return std::string(parsed->data(), parsed->size());
}

std::string event_key(std::string_view event_id) { return raw(event_id); }
std::string delivery_key(std::string_view delivery_id) { return raw(delivery_id); }
std::string subscription_key(std::string_view subscription_id) { return raw(subscription_id); }
std::string job_key(std::string_view job_id) { return raw(job_id); }
std::string failure_streak_key(std::string_view subscription_id) { return raw(subscription_id); }

std::string encode_streak_start(UnixMillis since) {
  std::string value;
  append_u64(value, static_cast<std::uint64_t>(since));
  return value;
}

std::optional<UnixMillis> decode_streak_start(std::string_view value) {
  if (value.size() != 8) return std::nullopt;
  return static_cast<UnixMillis>(read_u64(value));
}

std::string schedule_key(UnixMillis due, std::string_view delivery_id) {
  std::string key = time_bound(due);
  key += raw(delivery_id);
  return key;
}

std::string dead_letter_key(UnixMillis dead_at, std::string_view delivery_id) {
  return schedule_key(dead_at, delivery_id);
}

std::string completed_key(UnixMillis done_at, CompletedKind kind, std::string_view id) {
  std::string key = time_bound(done_at);
  key.push_back(static_cast<char>(kind));
  key += raw(id);
  return key;
}

std::string event_delivery_key(std::string_view event_id, std::string_view delivery_id) {
  return raw(event_id) + raw(delivery_id);
}

std::string attempt_key(std::string_view delivery_id, std::uint32_t number) {
  std::string key = raw(delivery_id);
  append_u32(key, number);
  return key;
}

std::string id_prefix(std::string_view id) { return raw(id); }

std::string queue_prefix(std::string_view subscription_id, std::string_view ordering_key) {
  std::string key = raw(subscription_id);
  // Ordering keys are at most 256 characters (spec section 6), so 2 bytes hold their length.
  append_be(key, ordering_key.size(), 2);
  key += ordering_key;
  return key;
}

std::string queue_key(std::string_view subscription_id, std::string_view ordering_key, std::uint64_t seq) {
  std::string key = queue_prefix(subscription_id, ordering_key);
  append_u64(key, seq);
  return key;
}

std::optional<QueueEntry> decode_queue_key(std::string_view key) {
  if (key.size() < kIdBytes + 2 + 8) return std::nullopt;
  const std::size_t length = (static_cast<unsigned char>(key[kIdBytes]) << 8) | static_cast<unsigned char>(key[kIdBytes + 1]);
  if (key.size() != kIdBytes + 2 + length + 8) return std::nullopt;
  return QueueEntry{format_id(kSubscriptionPrefix, key.substr(0, kIdBytes)), std::string(key.substr(kIdBytes + 2, length)),
                    read_u64(key.substr(kIdBytes + 2 + length))};
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;  // empty: no upper bound
}

std::string time_bound(UnixMillis t) {
  std::string key;
  append_u64(key, static_cast<std::uint64_t>(t < 0 ? 0 : t));
  return key;
}

std::string id_time_bound(UnixMillis t) {
  // An id begins with its creation time in 6 bytes: the low 6 of the 8 of time_bound.
  return time_bound(t).substr(2);
}

TimedKey decode_schedule_key(std::string_view key) {
  return {static_cast<UnixMillis>(read_u64(key)), format_id(kDeliveryPrefix, key.substr(8, kIdBytes))};
}

std::string ScheduleKey::encode() const { return id.empty() ? time_bound(due) : schedule_key(due, id); }

ScheduleKey ScheduleKey::decode(std::string_view key) {
  auto timed = decode_schedule_key(key);
  return {timed.time, std::move(timed.id)};
}

TimedKey decode_dead_letter_key(std::string_view key) { return decode_schedule_key(key); }

CompletedEntry decode_completed_key(std::string_view key) {
  CompletedEntry entry;
  entry.time = static_cast<UnixMillis>(read_u64(key));
  entry.kind = key.size() > 8 && key[8] == static_cast<char>(CompletedKind::event) ? CompletedKind::event
                                                                                   : CompletedKind::delivery;
  entry.id = format_id(entry.kind == CompletedKind::event ? kEventPrefix : kDeliveryPrefix, key.substr(9, kIdBytes));
  return entry;
}

std::string decode_event_delivery_key(std::string_view key) {
  return format_id(kDeliveryPrefix, key.substr(kIdBytes, kIdBytes));
}

}  // namespace relay::keys
