#include "storage/records.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>

namespace relay::records {

using nlohmann::json;

namespace {

// First byte of each binary record: its kind and layout version. None is a byte MessagePack
// starts a map with (0x80-0x8f, 0xde, 0xdf), so a subscription never passes for one of these.
// A new layout takes a new tag; decoders of the old one stay until no database holds it.
// delivery_v2 appends window_pause_mark; v1 records (written before it) read with a mark of 0.
// event_v2 and delivery_v3 append tenant and ordering key (1.1); older records read with none.
// delivery_v4 appends the ordering queue's seq and the waiting flag; older records read as in no queue.
enum class Tag : std::uint8_t {
  event_v1 = 0x01,
  delivery_v1 = 0x02,
  attempt_v1 = 0x03,
  event_type_count_v1 = 0x04,
  delivery_v2 = 0x05,
  event_v2 = 0x06,
  delivery_v3 = 0x07,
  delivery_v4 = 0x08,
};

constexpr std::size_t kMaxVarintBytes = 10;  // 64 bits, 7 per byte

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t v) { return static_cast<std::int64_t>((v >> 1) ^ (0 - (v & 1))); }

// Appends fields to a record. The constructor reserves room for all of them: `varints` integers
// (the length of each string included) and the bytes of the strings.
class Writer {
 public:
  Writer(Tag tag, std::size_t varints, std::size_t string_bytes) {
    out_.reserve(1 + varints * kMaxVarintBytes + string_bytes);
    out_.push_back(static_cast<char>(tag));
  }

  void unsigned_int(std::uint64_t v) {
    char buf[kMaxVarintBytes];
    std::size_t n = 0;
    for (; v >= 0x80; v >>= 7) buf[n++] = static_cast<char>(v | 0x80);
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void signed_int(std::int64_t v) { unsigned_int(zigzag(v)); }
  template <typename Enum>
  void enumerator(Enum v) {
    unsigned_int(static_cast<std::uint64_t>(v));
  }
  void bytes(std::string_view s) {
    unsigned_int(s.size());
    out_.append(s);
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields in the order they were written. Every read checks the bytes left and the
// field's range, and returns false on the first violation; the record is then refused whole.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : next_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool tag(Tag expected) {
    if (next_ == end_ || static_cast<std::uint8_t>(*next_) != static_cast<std::uint8_t>(expected)) return false;
    ++next_;
    return true;
  }

  template <typename T>
  bool unsigned_int(T& out) {
    static_assert(std::is_unsigned_v<T>);
    std::uint64_t v = 0;
    if (!varint(v) || v > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(v);
    return true;
  }

  template <typename T>
  bool signed_int(T& out) {
    static_assert(std::is_signed_v<T>);
    std::uint64_t v = 0;
    if (!varint(v)) return false;
    const std::int64_t value = unzigzag(v);
    if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(value);
    return true;
  }

  // Enumerators are 0..last; anything above is not a value of the enum.
  template <typename Enum>
  bool enumerator(Enum& out, Enum last) {
    std::uint64_t v = 0;
    if (!varint(v) || v > static_cast<std::uint64_t>(last)) return false;
    out = static_cast<Enum>(v);
    return true;
  }

  bool bytes(std::string_view& out) {
    std::uint64_t size = 0;
    if (!varint(size) || size > static_cast<std::uint64_t>(end_ - next_)) return false;
    out = std::string_view(next_, static_cast<std::size_t>(size));
    next_ += size;
    return true;
  }

  bool string(std::string& out) {
    std::string_view view;
    if (!bytes(view)) return false;
    out.assign(view);
    return true;
  }

  bool finished() const { return next_ == end_; }

 private:
  bool varint(std::uint64_t& out) {
    std::uint64_t value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (next_ == end_) return false;
      const auto byte = static_cast<std::uint8_t>(*next_++);
      if (shift == 63 && byte > 1) return false;  // more than 64 bits
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        out = value;
        return true;
      }
    }
    return false;
  }

  const char* next_;
  const char* end_;
};

json optional_ms(const std::optional<std::int64_t>& v) { return v ? json(*v) : json(nullptr); }
std::optional<std::int64_t> read_optional_ms(const json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return std::nullopt;
  return j.at(key).get<std::int64_t>();
}

}  // namespace

std::string encode_record(const Event& e) {
  const std::string_view payload = e.payload ? std::string_view(*e.payload) : std::string_view("null");
  Writer out(Tag::event_v2, 7,
             e.id.size() + e.client_id.size() + e.type.size() + payload.size() + e.tenant.size() +
                 e.ordering_key.size());
  out.bytes(e.id);
  out.bytes(e.client_id);
  out.bytes(e.type);
  out.bytes(payload);
  out.signed_int(e.created_at);
  out.bytes(e.tenant);
  out.bytes(e.ordering_key);
  return out.take();
}

std::optional<Event> decode_event(std::string_view bytes) {
  Reader in(bytes);
  const bool current = in.tag(Tag::event_v2);
  Event e;
  std::string_view payload;
  if (!((current || in.tag(Tag::event_v1)) && in.string(e.id) && in.string(e.client_id) && in.string(e.type) &&
        in.bytes(payload) && in.signed_int(e.created_at) &&
        (!current || (in.string(e.tenant) && in.string(e.ordering_key))) && in.finished())) {
    return std::nullopt;
  }
  e.payload = std::make_shared<const std::string>(payload);
  return e;
}

std::string encode_record(const Delivery& d) {
  Writer out(Tag::delivery_v4, 16,
             d.id.size() + d.event_id.size() + d.subscription_id.size() + d.event_type.size() + d.last_error.size() +
                 d.tenant.size() + d.ordering_key.size());
  out.bytes(d.id);
  out.bytes(d.event_id);
  out.bytes(d.subscription_id);
  out.bytes(d.event_type);
  out.enumerator(d.state);
  out.signed_int(d.created_at);
  out.signed_int(d.next_attempt_at);
  out.signed_int(d.window_start);
  out.unsigned_int(d.attempts);
  out.signed_int(d.completed_at);
  out.bytes(d.last_error);
  out.signed_int(d.window_pause_mark);
  out.bytes(d.tenant);
  out.bytes(d.ordering_key);
  out.unsigned_int(d.queue_seq);
  out.unsigned_int(d.waiting ? 1u : 0u);
  return out.take();
}

std::optional<Delivery> decode_delivery(std::string_view bytes) {
  // The layout's version: 1 (no pause mark), 2 (pause mark), 3 (and tenant, ordering key), 4 (and
  // queue seq, waiting).
  Reader in(bytes);
  const int version = in.tag(Tag::delivery_v4)   ? 4
                      : in.tag(Tag::delivery_v3) ? 3
                      : in.tag(Tag::delivery_v2) ? 2
                      : in.tag(Tag::delivery_v1) ? 1
                                                 : 0;
  std::uint64_t waiting = 0;
  Delivery d;
  // superseded exists since v3 only.
  const DeliveryState last_state = version >= 3 ? DeliveryState::superseded : DeliveryState::dead;
  if (!(version != 0 && in.string(d.id) && in.string(d.event_id) && in.string(d.subscription_id) &&
        in.string(d.event_type) && in.enumerator(d.state, last_state) && in.signed_int(d.created_at) &&
        in.signed_int(d.next_attempt_at) && in.signed_int(d.window_start) && in.unsigned_int(d.attempts) &&
        in.signed_int(d.completed_at) && in.string(d.last_error) &&
        (version < 2 || in.signed_int(d.window_pause_mark)) &&
        (version < 3 || (in.string(d.tenant) && in.string(d.ordering_key))) &&
        (version < 4 || (in.unsigned_int(d.queue_seq) && in.unsigned_int(waiting) && waiting <= 1)) &&
        in.finished())) {
    return std::nullopt;
  }
  d.waiting = waiting == 1;
  return d;
}

std::string encode_record(const Attempt& a) {
  Writer out(Tag::attempt_v1, 7, a.error.size() + a.response_body.size());
  out.unsigned_int(a.number);
  out.signed_int(a.started_at);
  out.signed_int(a.duration_ms);
  out.signed_int(a.http_status);
  out.enumerator(a.outcome);
  out.bytes(a.error);
  out.bytes(a.response_body);
  return out.take();
}

std::optional<Attempt> decode_attempt(std::string_view bytes) {
  Reader in(bytes);
  Attempt a;
  if (!(in.tag(Tag::attempt_v1) && in.unsigned_int(a.number) && in.signed_int(a.started_at) &&
        in.signed_int(a.duration_ms) && in.signed_int(a.http_status) &&
        in.enumerator(a.outcome, AttemptOutcome::other) && in.string(a.error) && in.string(a.response_body) &&
        in.finished())) {
    return std::nullopt;
  }
  return a;
}

std::string encode_record(const EventTypeStats& stats) {
  Writer out(Tag::event_type_count_v1, 2, 0);
  out.unsigned_int(stats.count);
  out.signed_int(stats.last_seen);
  return out.take();
}

std::optional<EventTypeStats> decode_event_type_stats(std::string_view type, std::string_view bytes) {
  Reader in(bytes);
  EventTypeStats stats;
  if (!(in.tag(Tag::event_type_count_v1) && in.unsigned_int(stats.count) && in.signed_int(stats.last_seen) &&
        in.finished())) {
    return std::nullopt;
  }
  stats.type.assign(type);
  return stats;
}

json to_record(const Subscription& s) {
  return {{"id", s.id},
          {"url", s.url},
          {"event_types", s.event_types},
          {"tenant", s.tenant},
          {"filter", s.filter},
          {"ordering", ordering_name(s.ordering)},
          {"coalesce", s.coalesce},
          {"secret", s.secret},
          {"previous_secret", s.previous_secret},
          {"previous_secret_expires_at", s.previous_secret_expires_at},
          {"signature_scheme", signature_scheme_name(s.signature_scheme)},
          {"signature_header", s.signature_header},
          {"headers", s.headers},
          {"enabled", s.enabled},
          // A disabled subscription without a reason (set by hand, not by set_enabled) is manual.
          {"disabled_reason", disabled_reason_name(s.enabled                                 ? DisabledReason::none
                                                   : s.disabled_reason == DisabledReason::none ? DisabledReason::manual
                                                                                               : s.disabled_reason)},
          {"disabled_at", s.disabled_at},
          {"disabled_ms", s.disabled_ms},
          {"description", s.description},
          {"retry_initial_ms", optional_ms(s.retry.initial_ms)},
          {"retry_max_delay_ms", optional_ms(s.retry.max_delay_ms)},
          {"retry_window_ms", optional_ms(s.retry.window_ms)},
          {"timeout_ms", optional_ms(s.timeout_ms)},
          {"max_in_flight", s.max_in_flight},
          {"rate_limit_per_second", s.rate_limit_per_second},
          {"disable_after_ms", optional_ms(s.disable_after_ms)},
          {"created_at", s.created_at},
          {"updated_at", s.updated_at}};
}

Subscription subscription_from_record(const json& j) {
  Subscription s;
  s.id = j.at("id").get<std::string>();
  s.url = j.at("url").get<std::string>();
  s.event_types = j.at("event_types").get<std::vector<std::string>>();
  // Absent in records written before 1.1.
  s.tenant = j.value("tenant", std::string());
  s.filter = j.value("filter", std::string());
  s.ordering = parse_ordering(j.value("ordering", std::string("none"))).value_or(Ordering::none);
  s.coalesce = j.value("coalesce", false);
  s.secret = j.at("secret").get<std::string>();
  s.previous_secret = j.at("previous_secret").get<std::string>();
  s.previous_secret_expires_at = j.at("previous_secret_expires_at").get<UnixMillis>();
  s.signature_scheme =
      parse_signature_scheme(j.at("signature_scheme").get<std::string>()).value_or(SignatureScheme::standard);
  s.signature_header = j.at("signature_header").get<std::string>();
  s.headers = j.at("headers").get<std::map<std::string, std::string>>();
  s.enabled = j.at("enabled").get<bool>();
  // Absent in records written before the pause was kept.
  s.disabled_at = j.value("disabled_at", UnixMillis{0});
  s.disabled_ms = j.value("disabled_ms", std::int64_t{0});
  // Absent in records written before automatic disabling: every disabled one was disabled by hand.
  const auto reason = parse_disabled_reason(j.value("disabled_reason", std::string())).value_or(DisabledReason::none);
  s.disabled_reason = s.enabled ? DisabledReason::none : reason == DisabledReason::none ? DisabledReason::manual : reason;
  s.description = j.at("description").get<std::string>();
  s.retry.initial_ms = read_optional_ms(j, "retry_initial_ms");
  s.retry.max_delay_ms = read_optional_ms(j, "retry_max_delay_ms");
  s.retry.window_ms = read_optional_ms(j, "retry_window_ms");
  s.timeout_ms = read_optional_ms(j, "timeout_ms");
  s.max_in_flight = j.at("max_in_flight").get<std::uint32_t>();
  s.rate_limit_per_second = j.at("rate_limit_per_second").get<std::uint32_t>();
  s.disable_after_ms = read_optional_ms(j, "disable_after_ms");  // absent before automatic disabling
  s.created_at = j.at("created_at").get<UnixMillis>();
  s.updated_at = j.at("updated_at").get<UnixMillis>();
  return s;
}

std::string encode_record(const Subscription& subscription) {
  std::string out;
  nlohmann::json::to_msgpack(to_record(subscription), out);
  return out;
}

std::optional<Subscription> decode_subscription(std::string_view bytes) {
  const auto record = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true,
                                                   /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object()) return std::nullopt;
  // A subscription has no floating-point fields; one here is corruption, and converting it to
  // an integer field could be out of range.
  for (const auto& [key, value] : record.items()) {
    if (value.is_number_float()) return std::nullopt;
  }
  try {
    return subscription_from_record(record);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace relay::records
