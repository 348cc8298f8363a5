// Stored records: every field of every record survives encode + decode, including the extremes
// of its type; the binary layout is the documented one; and bytes that are not one whole valid
// record of the expected kind (cut short, trailing bytes, another kind, out-of-range integers or
// enumerators, lengths beyond the end) decode to nullopt.

#include "storage/records.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/sample_subscription.h"

namespace relay {
namespace records_test {

constexpr UnixMillis kT = 1'795'687'200'123;
constexpr std::int64_t kMin64 = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax64 = std::numeric_limits<std::int64_t>::max();

// Builds record bytes by hand from the layout documented in storage/records.h, so that the
// tests pin the format and can write values relay's encoder never would.
class Bytes {
 public:
  explicit Bytes(std::uint8_t tag) { out_.push_back(static_cast<char>(tag)); }
  Bytes& raw(std::string_view bytes) {
    out_.append(bytes);
    return *this;
  }
  Bytes& u(std::uint64_t v) {
    for (; v >= 0x80; v >>= 7) out_.push_back(static_cast<char>(v | 0x80));
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& s(std::int64_t v) { return u((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63)); }
  Bytes& str(std::string_view v) { return u(v.size()).raw(v); }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

constexpr std::uint8_t kEventV1Tag = 0x01;     // before tenant and ordering key
constexpr std::uint8_t kEventTag = 0x06;
constexpr std::uint8_t kDeliveryV1Tag = 0x02;  // before window_pause_mark
constexpr std::uint8_t kDeliveryV2Tag = 0x05;  // before tenant and ordering key
constexpr std::uint8_t kDeliveryV3Tag = 0x07;  // before the ordering queue's seq and waiting
constexpr std::uint8_t kDeliveryTag = 0x08;
constexpr std::uint8_t kAttemptTag = 0x03;
constexpr std::uint8_t kEventTypeCountTag = 0x04;

Event sample_event() {
  Event e;
  e.id = "evt_0000019abcdef0123456789abcdef012";
  e.client_id = "client-1";
  e.type = "meeting.completed";
  e.payload = std::make_shared<const std::string>(R"({"bot_id":"x","n":[1,2.5,null],"s":"é"})");
  e.created_at = kT;
  e.tenant = "customer_42";
  e.ordering_key = "cal_7";
  return e;
}

Delivery sample_delivery(DeliveryState state = DeliveryState::dead) {
  Delivery d;
  d.id = "dlv_0000019abcdef0123456789abcdef012";
  d.event_id = "evt_0000019abcdef0123456789abcdef012";
  d.subscription_id = "sub_0000019abcdef0123456789abcdef012";
  d.event_type = "meeting.completed";
  d.state = state;
  d.created_at = kT;
  d.next_attempt_at = kT + 5'000;
  d.window_start = kT + 1;
  d.attempts = 7;
  d.completed_at = kT + 9;
  d.last_error = "connect_error";
  d.window_pause_mark = 90'000;
  d.tenant = "customer_42";
  d.ordering_key = "cal_7";
  d.queue_seq = 300;
  d.waiting = state == DeliveryState::pending;
  return d;
}

Attempt sample_attempt(AttemptOutcome outcome = AttemptOutcome::http_5xx) {
  Attempt a;
  a.number = 3;
  a.started_at = kT;
  a.duration_ms = 1'234;
  a.http_status = 503;
  a.outcome = outcome;
  a.error = "connection refused";
  a.response_body = std::string("binary\0body\xff", 12);  // a response body is any bytes
  return a;
}

void expect_same(const Event& a, const Event& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.client_id, b.client_id);
  EXPECT_EQ(a.type, b.type);
  ASSERT_TRUE(a.payload && b.payload);
  EXPECT_EQ(*a.payload, *b.payload);  // byte for byte: it is the body of every attempt
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.tenant, b.tenant);
  EXPECT_EQ(a.ordering_key, b.ordering_key);
}

void expect_same(const Delivery& a, const Delivery& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.event_id, b.event_id);
  EXPECT_EQ(a.subscription_id, b.subscription_id);
  EXPECT_EQ(a.event_type, b.event_type);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.next_attempt_at, b.next_attempt_at);
  EXPECT_EQ(a.window_start, b.window_start);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.completed_at, b.completed_at);
  EXPECT_EQ(a.last_error, b.last_error);
  EXPECT_EQ(a.window_pause_mark, b.window_pause_mark);
  EXPECT_EQ(a.tenant, b.tenant);
  EXPECT_EQ(a.ordering_key, b.ordering_key);
  EXPECT_EQ(a.queue_seq, b.queue_seq);
  EXPECT_EQ(a.waiting, b.waiting);
}

void expect_same(const Attempt& a, const Attempt& b) {
  EXPECT_EQ(a.number, b.number);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.duration_ms, b.duration_ms);
  EXPECT_EQ(a.http_status, b.http_status);
  EXPECT_EQ(a.outcome, b.outcome);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.response_body, b.response_body);
}

TEST(RecordsTest, EventRoundTripsEveryField) {
  const Event e = sample_event();
  const auto back = records::decode_event(records::encode_record(e));
  ASSERT_TRUE(back);
  expect_same(*back, e);

  Event extremes;
  extremes.payload = std::make_shared<const std::string>(std::string("\0\x80\xff", 3));
  for (UnixMillis t : {kMin64, UnixMillis{-1}, UnixMillis{0}, kMax64}) {
    extremes.created_at = t;
    const auto decoded = records::decode_event(records::encode_record(extremes));
    ASSERT_TRUE(decoded) << t;
    expect_same(*decoded, extremes);
  }
}

TEST(RecordsTest, AnEventWithoutPayloadIsStoredWithTheJsonNull) {
  Event e = sample_event();
  e.payload.reset();
  const auto back = records::decode_event(records::encode_record(e));
  ASSERT_TRUE(back);
  ASSERT_TRUE(back->payload);
  EXPECT_EQ(*back->payload, "null");
}

TEST(RecordsTest, DeliveryRoundTripsEveryFieldInEveryState) {
  for (DeliveryState state :
       {DeliveryState::pending, DeliveryState::in_flight, DeliveryState::succeeded, DeliveryState::dead,
        DeliveryState::superseded}) {
    const Delivery d = sample_delivery(state);
    const auto back = records::decode_delivery(records::encode_record(d));
    ASSERT_TRUE(back) << delivery_state_name(state);
    expect_same(*back, d);
  }
  Delivery extremes;  // empty strings, and the limits of every integer
  extremes.created_at = kMin64;
  extremes.next_attempt_at = kMax64;
  extremes.window_start = -1;
  extremes.attempts = std::numeric_limits<std::uint32_t>::max();
  extremes.completed_at = kMax64;
  const auto back = records::decode_delivery(records::encode_record(extremes));
  ASSERT_TRUE(back);
  expect_same(*back, extremes);
}

TEST(RecordsTest, AttemptRoundTripsEveryFieldWithEveryOutcome) {
  for (int i = 0; i <= static_cast<int>(AttemptOutcome::other); ++i) {
    const Attempt a = sample_attempt(static_cast<AttemptOutcome>(i));
    const auto back = records::decode_attempt(records::encode_record(a));
    ASSERT_TRUE(back) << attempt_outcome_name(a.outcome);
    expect_same(*back, a);
  }
  Attempt extremes;
  extremes.number = std::numeric_limits<std::uint32_t>::max();
  extremes.started_at = kMin64;
  extremes.duration_ms = kMax64;
  for (int status : {INT_MIN, -1, 0, INT_MAX}) {
    extremes.http_status = status;
    const auto back = records::decode_attempt(records::encode_record(extremes));
    ASSERT_TRUE(back) << status;
    expect_same(*back, extremes);
  }
}

TEST(RecordsTest, EventTypeStatsRoundTripWithTheTypeFromTheKey) {
  const EventTypeStats s{"ignored: the key names the type", 18'000'000'000'000'000'000ULL, kT};
  const auto back = records::decode_event_type_stats("meeting.completed", records::encode_record(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->type, "meeting.completed");
  EXPECT_EQ(back->count, s.count);
  EXPECT_EQ(back->last_seen, kT);
  EXPECT_EQ(records::encode_record(s), records::encode_record(EventTypeStats{"", s.count, kT}));
}

TEST(RecordsTest, TheLayoutIsTheDocumentedOne) {
  const Event e = sample_event();
  EXPECT_EQ(records::encode_record(e),
            Bytes(kEventTag)
                .str(e.id)
                .str(e.client_id)
                .str(e.type)
                .str(*e.payload)
                .s(e.created_at)
                .str(e.tenant)
                .str(e.ordering_key)
                .bytes());
  const Delivery d = sample_delivery();
  EXPECT_EQ(records::encode_record(d), Bytes(kDeliveryTag)
                                           .str(d.id)
                                           .str(d.event_id)
                                           .str(d.subscription_id)
                                           .str(d.event_type)
                                           .u(3)  // dead
                                           .s(d.created_at)
                                           .s(d.next_attempt_at)
                                           .s(d.window_start)
                                           .u(d.attempts)
                                           .s(d.completed_at)
                                           .str(d.last_error)
                                           .s(d.window_pause_mark)
                                           .str(d.tenant)
                                           .str(d.ordering_key)
                                           .u(d.queue_seq)
                                           .u(0)  // not waiting
                                           .bytes());
  const Attempt a = sample_attempt(AttemptOutcome::http_5xx);
  EXPECT_EQ(records::encode_record(a), Bytes(kAttemptTag)
                                           .u(a.number)
                                           .s(a.started_at)
                                           .s(a.duration_ms)
                                           .s(a.http_status)
                                           .u(2)  // http_5xx
                                           .str(a.error)
                                           .str(a.response_body)
                                           .bytes());
  EXPECT_EQ(records::encode_record(EventTypeStats{"t", 300, -2}), Bytes(kEventTypeCountTag).u(300).s(-2).bytes());
  // Small and negative integers take one byte; a time of 2026 takes six.
  EXPECT_EQ(Bytes(0).s(-1).bytes().size(), 2u);
  EXPECT_EQ(records::encode_record(EventTypeStats{"t", 1, kT}).size(), 1u + 1u + 6u);
}

TEST(RecordsTest, DeliveriesWrittenBeforeThePauseMarkStillDecode) {
  Delivery d = sample_delivery(DeliveryState::pending);
  const std::string v1 = Bytes(kDeliveryV1Tag)
                             .str(d.id)
                             .str(d.event_id)
                             .str(d.subscription_id)
                             .str(d.event_type)
                             .u(0)  // pending
                             .s(d.created_at)
                             .s(d.next_attempt_at)
                             .s(d.window_start)
                             .u(d.attempts)
                             .s(d.completed_at)
                             .str(d.last_error)
                             .bytes();
  const auto decoded = records::decode_delivery(v1);
  ASSERT_TRUE(decoded);
  d.window_pause_mark = 0;  // none was noted: every pause counts, so no window ends early
  d.tenant.clear();
  d.ordering_key.clear();
  d.queue_seq = 0;
  d.waiting = false;
  expect_same(*decoded, d);
}

TEST(RecordsTest, DeliveriesWrittenBeforeOrderingQueuesDecodeAsInNone) {
  Delivery d = sample_delivery(DeliveryState::pending);
  const std::string v3 = Bytes(kDeliveryV3Tag)
                             .str(d.id)
                             .str(d.event_id)
                             .str(d.subscription_id)
                             .str(d.event_type)
                             .u(0)  // pending
                             .s(d.created_at)
                             .s(d.next_attempt_at)
                             .s(d.window_start)
                             .u(d.attempts)
                             .s(d.completed_at)
                             .str(d.last_error)
                             .s(d.window_pause_mark)
                             .str(d.tenant)
                             .str(d.ordering_key)
                             .bytes();
  const auto decoded = records::decode_delivery(v3);
  ASSERT_TRUE(decoded);
  d.queue_seq = 0;    // scheduled like any delivery
  d.waiting = false;
  expect_same(*decoded, d);
  // A waiting flag other than 0 or 1 is not one relay wrote.
  Delivery bad = sample_delivery(DeliveryState::pending);
  std::string bytes = records::encode_record(bad);
  ASSERT_EQ(bytes.back(), '\x01');
  bytes.back() = '\x02';
  EXPECT_FALSE(records::decode_delivery(bytes));
}

TEST(RecordsTest, RecordsWrittenBeforeTenantsStillDecodeWithoutOne) {
  Delivery d = sample_delivery(DeliveryState::dead);
  d.tenant.clear();
  d.ordering_key.clear();
  d.queue_seq = 0;
  d.waiting = false;
  const std::string v2 = Bytes(kDeliveryV2Tag)
                             .str(d.id)
                             .str(d.event_id)
                             .str(d.subscription_id)
                             .str(d.event_type)
                             .u(3)  // dead
                             .s(d.created_at)
                             .s(d.next_attempt_at)
                             .s(d.window_start)
                             .u(d.attempts)
                             .s(d.completed_at)
                             .str(d.last_error)
                             .s(d.window_pause_mark)
                             .bytes();
  const auto delivery = records::decode_delivery(v2);
  ASSERT_TRUE(delivery);
  expect_same(*delivery, d);
  // superseded came with the new layout: an older record holding it is not one relay wrote.
  std::string superseded = v2;
  superseded[1 + 1 + d.id.size() + 1 + d.event_id.size() + 1 + d.subscription_id.size() + 1 + d.event_type.size()] = 4;
  EXPECT_FALSE(records::decode_delivery(superseded));

  Event e = sample_event();
  e.tenant.clear();
  e.ordering_key.clear();
  const auto event = records::decode_event(
      Bytes(kEventV1Tag).str(e.id).str(e.client_id).str(e.type).str(*e.payload).s(e.created_at).bytes());
  ASSERT_TRUE(event);
  expect_same(*event, e);
}

// Every prefix of a valid record is a record cut short, and one byte more is not a record either.
template <typename Decode>
void expect_only_the_whole_record_decodes(const std::string& bytes, Decode decode) {
  ASSERT_TRUE(decode(bytes));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode(std::string_view(bytes).substr(0, n))) << "cut to " << n << " bytes";
  }
  EXPECT_FALSE(decode(bytes + '\0'));
}

TEST(RecordsTest, DecodingRefusesRecordsCutShortOrWithTrailingBytes) {
  expect_only_the_whole_record_decodes(records::encode_record(sample_event()), records::decode_event);
  expect_only_the_whole_record_decodes(records::encode_record(sample_delivery()), records::decode_delivery);
  expect_only_the_whole_record_decodes(records::encode_record(sample_attempt()), records::decode_attempt);
  expect_only_the_whole_record_decodes(records::encode_record(EventTypeStats{"t", 5, kT}),
                                       [](std::string_view b) { return records::decode_event_type_stats("t", b); });
}

TEST(RecordsTest, DecodingRefusesARecordOfAnotherKindOrVersion) {
  Subscription sub;
  sub.id = "sub_1";
  const std::string event = records::encode_record(sample_event());
  const std::string delivery = records::encode_record(sample_delivery());
  const std::string attempt = records::encode_record(sample_attempt());
  const std::string subscription = records::encode_record(sub);
  for (const std::string& other : {delivery, attempt, subscription}) EXPECT_FALSE(records::decode_event(other));
  for (const std::string& other : {event, attempt, subscription}) EXPECT_FALSE(records::decode_delivery(other));
  for (const std::string& other : {event, delivery, subscription}) EXPECT_FALSE(records::decode_attempt(other));
  for (const std::string& other : {event, delivery, attempt}) EXPECT_FALSE(records::decode_subscription(other));
  EXPECT_FALSE(records::decode_event_type_stats("t", event));
  EXPECT_FALSE(records::decode_event_type_stats("t", subscription));

  // An unknown version: the same fields behind another first byte.
  std::string next_version = delivery;
  next_version[0] = static_cast<char>(0x12);
  EXPECT_FALSE(records::decode_delivery(next_version));
  // What the first layout of relay stored (MessagePack of the JSON mapping) is not read.
  std::string msgpack;
  nlohmann::json::to_msgpack(nlohmann::json{{"type", "t"}, {"count", 1}, {"last_seen", kT}}, msgpack);
  EXPECT_FALSE(records::decode_event_type_stats("t", msgpack));
  EXPECT_FALSE(records::decode_event(""));
  EXPECT_FALSE(records::decode_delivery("garbage"));
}

TEST(RecordsTest, DecodingRefusesEnumeratorsOutOfRange) {
  const Delivery d = sample_delivery();
  const auto delivery_with_state = [&](std::uint64_t state) {
    return Bytes(kDeliveryTag)
        .str(d.id)
        .str(d.event_id)
        .str(d.subscription_id)
        .str(d.event_type)
        .u(state)
        .s(d.created_at)
        .s(d.next_attempt_at)
        .s(d.window_start)
        .u(d.attempts)
        .s(d.completed_at)
        .str(d.last_error)
        .s(d.window_pause_mark)
        .str(d.tenant)
        .str(d.ordering_key)
        .u(d.queue_seq)
        .u(0)
        .bytes();
  };
  EXPECT_TRUE(records::decode_delivery(delivery_with_state(4)));
  EXPECT_FALSE(records::decode_delivery(delivery_with_state(5)));
  EXPECT_FALSE(records::decode_delivery(delivery_with_state(~std::uint64_t{0})));

  const Attempt a = sample_attempt();
  const auto attempt_with_outcome = [&](std::uint64_t outcome) {
    return Bytes(kAttemptTag)
        .u(a.number)
        .s(a.started_at)
        .s(a.duration_ms)
        .s(a.http_status)
        .u(outcome)
        .str(a.error)
        .str(a.response_body)
        .bytes();
  };
  EXPECT_TRUE(records::decode_attempt(attempt_with_outcome(8)));
  EXPECT_FALSE(records::decode_attempt(attempt_with_outcome(9)));
}

TEST(RecordsTest, DecodingRefusesIntegersTooLargeForTheirField) {
  const auto attempt = [](std::uint64_t number, std::int64_t http_status) {
    return Bytes(kAttemptTag).u(number).s(kT).s(10).s(http_status).u(0).str("").str("").bytes();
  };
  EXPECT_TRUE(records::decode_attempt(attempt(UINT32_MAX, INT_MIN)));
  EXPECT_FALSE(records::decode_attempt(attempt(std::uint64_t{UINT32_MAX} + 1, 200)));
  EXPECT_FALSE(records::decode_attempt(attempt(1, std::int64_t{INT_MAX} + 1)));
  EXPECT_FALSE(records::decode_attempt(attempt(1, std::int64_t{INT_MIN} - 1)));

  // A varint of more than 64 bits: ten bytes whose last carries more than the 64th bit, or
  // more than ten bytes.
  const std::string max_u64 = Bytes(kEventTypeCountTag).u(UINT64_MAX).s(kT).bytes();
  const auto largest = records::decode_event_type_stats("t", max_u64);
  ASSERT_TRUE(largest);
  EXPECT_EQ(largest->count, UINT64_MAX);
  EXPECT_FALSE(records::decode_event_type_stats(
      "t", Bytes(kEventTypeCountTag).raw("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02").s(kT).bytes()));
  EXPECT_FALSE(records::decode_event_type_stats(
      "t", Bytes(kEventTypeCountTag).raw("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x81\x00").s(kT).bytes()));
}

TEST(RecordsTest, DecodingRefusesLengthsBeyondTheEndWithoutAllocatingThem) {
  // A length one past the bytes left, and lengths no memory could hold (ASan would report an
  // allocation of that size).
  for (std::uint64_t length : {std::uint64_t{4}, std::uint64_t{1} << 40, std::uint64_t{1} << 63, UINT64_MAX}) {
    EXPECT_FALSE(records::decode_event(Bytes(kEventTag).u(length).raw("evt").bytes())) << length;
    EXPECT_FALSE(records::decode_attempt(Bytes(kAttemptTag).u(1).s(kT).s(1).s(200).u(0).str("").u(length).bytes()))
        << length;
  }
}

TEST(RecordsTest, DecodingRefusesSubscriptionRecordsWithMissingOrMistypedFields) {
  Subscription s;
  s.id = "sub_1";
  const std::string bytes = records::encode_record(s);
  auto record = nlohmann::json::from_msgpack(bytes);
  const auto encoded = [](const nlohmann::json& j) {
    std::string out;
    nlohmann::json::to_msgpack(j, out);
    return out;
  };
  EXPECT_TRUE(records::decode_subscription(encoded(record)));
  record.erase("url");
  EXPECT_FALSE(records::decode_subscription(encoded(record)));
  record = nlohmann::json::from_msgpack(bytes);
  record["max_in_flight"] = "ten";
  EXPECT_FALSE(records::decode_subscription(encoded(record)));
  // Found by fuzzing: nlohmann converts a float to an integer with a static_cast, undefined
  // behaviour when the float is out of range (UBSan aborts).
  record = nlohmann::json::from_msgpack(bytes);
  record["created_at"] = 1e300;
  EXPECT_FALSE(records::decode_subscription(encoded(record)));
  EXPECT_FALSE(records::decode_subscription(std::string_view(bytes).substr(0, bytes.size() - 3)));
  EXPECT_FALSE(records::decode_subscription("\xc1"));  // never used in MessagePack
}

// The stored form of a subscription round-trips exactly (record -> struct -> record, and
// through its MessagePack encoding).
TEST(RecordsTest, SubscriptionRecordRoundTrips) {
  for (Subscription s : {full_subscription(), Subscription{}}) {
    const nlohmann::json record = records::to_record(s);
    const Subscription back = records::subscription_from_record(record);
    EXPECT_EQ(records::to_record(back), record);
    EXPECT_EQ(back.retry.initial_ms, s.retry.initial_ms);
    EXPECT_EQ(back.retry.max_delay_ms, s.retry.max_delay_ms);
    EXPECT_EQ(back.retry.window_ms, s.retry.window_ms);
    EXPECT_EQ(back.timeout_ms, s.timeout_ms);
    EXPECT_EQ(back.headers, s.headers);
    EXPECT_EQ(back.event_types, s.event_types);
    EXPECT_EQ(back.signature_scheme, s.signature_scheme);
    EXPECT_EQ(back.previous_secret, s.previous_secret);
    EXPECT_EQ(back.disabled_reason, s.disabled_reason);
    EXPECT_EQ(back.disabled_at, s.disabled_at);
    EXPECT_EQ(back.disable_after_ms, s.disable_after_ms);
    const auto decoded = records::decode_subscription(records::encode_record(s));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(records::to_record(*decoded), record);
  }
}

TEST(RecordsTest, SubscriptionRecordsWrittenBeforeThePauseAccountReadAsNeverDisabled) {
  nlohmann::json record = records::to_record(full_subscription());
  EXPECT_EQ(record.at("disabled_ms"), 4'000);
  record.erase("disabled_at");
  record.erase("disabled_ms");
  const Subscription back = records::subscription_from_record(record);
  EXPECT_EQ(back.disabled_at, 0);
  EXPECT_EQ(back.disabled_ms, 0);
}

TEST(RecordsTest, SubscriptionRecordsWrittenBeforeAutomaticDisablingReadAsDisabledByHand) {
  nlohmann::json record = records::to_record(full_subscription());
  EXPECT_EQ(record.at("disabled_reason"), "failing");
  EXPECT_EQ(record.at("disable_after_ms"), 2 * 86'400'000);
  record.erase("disabled_reason");
  record.erase("disable_after_ms");
  Subscription back = records::subscription_from_record(record);
  EXPECT_EQ(back.disabled_reason, DisabledReason::manual) << "disabled, and only operators disabled then";
  EXPECT_FALSE(back.disable_after_ms.has_value()) << "--disable-after applies";
  record["enabled"] = true;
  back = records::subscription_from_record(record);
  EXPECT_EQ(back.disabled_reason, DisabledReason::none);
  // An enabled subscription has no reason, whatever a record says.
  record["disabled_reason"] = "failing";
  EXPECT_EQ(records::subscription_from_record(record).disabled_reason, DisabledReason::none);
}

}  // namespace records_test
}  // namespace relay
