// Payload filters (spec section 6): the language, its limits and error messages, and the
// payload index they read.

#include "relay/routing/payload_filter.h"

#include <gtest/gtest.h>

#include <string>

#include "relay/routing/json_index.h"

namespace relay {
namespace payload_filter_test {

using nlohmann::json;

// A Recall-style calendar event and a booking app's event, as publishers send them.
constexpr std::string_view kCalendarPayload =
    R"({"event":"calendar.sync_events","data":{"calendar_id":"cal_42","last_updated_ts":"2023-05-01T12:00:00Z",)"
    R"("affected_event_uuids":["123e4567-e89b-12d3-a456-426614174001","123e4567-e89b-12d3-a456-426614174002"],)"
    R"("attendees":3,"duration":30.5,"recurring":false,"organizer":null,"a.b":"dotted","back\\slash":"bs",)"
    R"("unicode":"caf\u00e9","0":"zero key","nested":{"deep":{"deeper":[{"x":1},{"x":2}]}}}})";

std::shared_ptr<const PayloadFilter> compile_ok(const json& spec) {
  auto filter = PayloadFilter::compile(spec);
  EXPECT_TRUE(filter.ok()) << spec.dump() << ": " << (filter.ok() ? "" : filter.error().message);
  return filter.ok() ? *filter : nullptr;
}

bool matches(const json& spec, std::string_view payload = kCalendarPayload,
             std::string_view type = "calendar.sync_events") {
  const auto filter = compile_ok(spec);
  if (!filter) return false;
  FilterSubject subject(type, payload);
  return filter->matches(subject);
}

std::string error_of(const json& spec) {
  auto filter = PayloadFilter::compile(spec);
  if (filter.ok()) return "(compiled)";
  EXPECT_EQ(filter.error().code, Errc::invalid_field);
  return filter.error().message;
}

TEST(PayloadFilterTest, SpecExample) {
  const json spec = {{"payload.data.calendar_id", "cal_42"}, {"payload.eventType", {{"$in", {"BOOK", "RESCHEDULE"}}}}};
  EXPECT_TRUE(matches(spec, R"({"data":{"calendar_id":"cal_42"},"eventType":"BOOK"})"));
  EXPECT_TRUE(matches(spec, R"({"data":{"calendar_id":"cal_42"},"eventType":"RESCHEDULE"})"));
  EXPECT_FALSE(matches(spec, R"({"data":{"calendar_id":"cal_42"},"eventType":"CANCEL"})"));
  EXPECT_FALSE(matches(spec, R"({"data":{"calendar_id":"cal_43"},"eventType":"BOOK"})"));
  EXPECT_FALSE(matches(spec, R"({"data":{},"eventType":"BOOK"})"));
  EXPECT_EQ(compile_ok(spec)->conditions(), 2u);
}

TEST(PayloadFilterTest, EmptyFilterMatchesEverything) {
  EXPECT_TRUE(matches(json::object()));
  EXPECT_TRUE(matches(json::object(), "null"));
  EXPECT_EQ(compile_ok(json::object())->conditions(), 0u);
}

TEST(PayloadFilterTest, TypedScalarEquality) {
  EXPECT_TRUE(matches({{"payload.data.attendees", 3}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", 3.0}}));  // numbers by value
  EXPECT_FALSE(matches({{"payload.data.attendees", "3"}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", 4}}));
  EXPECT_TRUE(matches({{"payload.data.duration", 30.5}}));
  EXPECT_FALSE(matches({{"payload.data.duration", 30}}));
  EXPECT_TRUE(matches({{"payload.data.recurring", false}}));
  EXPECT_FALSE(matches({{"payload.data.recurring", 0}}));
  EXPECT_FALSE(matches({{"payload.data.recurring", nullptr}}));
  EXPECT_TRUE(matches({{"payload.data.organizer", nullptr}}));
  EXPECT_FALSE(matches({{"payload.data.organizer", false}}));
  EXPECT_FALSE(matches({{"payload.data.organizer", ""}}));
  EXPECT_TRUE(matches({{"payload.data.unicode", "caf\xC3\xA9"}}));  // compared decoded
  EXPECT_FALSE(matches({{"payload.data.unicode", "caf\\u00e9"}}));
  EXPECT_FALSE(matches({{"payload.data.nested", "x"}}));           // an object equals no scalar
  EXPECT_FALSE(matches({{"payload.data.affected_event_uuids", "123e4567-e89b-12d3-a456-426614174001"}}));
}

TEST(PayloadFilterTest, NumbersCompareByValue) {
  EXPECT_TRUE(matches({{"payload.n", 1}}, R"({"n":1.0})"));
  EXPECT_TRUE(matches({{"payload.n", 100}}, R"({"n":1e2})"));
  EXPECT_TRUE(matches({{"payload.n", 0}}, R"({"n":-0})"));
  EXPECT_TRUE(matches({{"payload.n", 0}}, R"({"n":-0.0})"));
  EXPECT_TRUE(matches({{"payload.n", -5}}, R"({"n":-5})"));
  // 64-bit integers compare exactly (as doubles these two are equal).
  EXPECT_TRUE(matches({{"payload.n", 9007199254740993ULL}}, R"({"n":9007199254740993})"));
  EXPECT_FALSE(matches({{"payload.n", 9007199254740993ULL}}, R"({"n":9007199254740992})"));
  EXPECT_TRUE(matches({{"payload.n", 18446744073709551615ULL}}, R"({"n":18446744073709551615})"));
  EXPECT_TRUE(matches({{"payload.n", {{"$lt", -9223372036854775807LL}}}}, R"({"n":-9223372036854775808})"));
  // Beyond 64 bits, as doubles.
  EXPECT_TRUE(matches({{"payload.n", {{"$gt", 18446744073709551615ULL}}}}, R"({"n":100000000000000000000})"));
  EXPECT_TRUE(matches({{"payload.n", 1e20}}, R"({"n":100000000000000000000})"));
}

TEST(PayloadFilterTest, EveryOperator) {
  EXPECT_TRUE(matches({{"payload.data.calendar_id", {{"$eq", "cal_42"}}}}));
  EXPECT_FALSE(matches({{"payload.data.calendar_id", {{"$eq", "cal_4"}}}}));
  EXPECT_TRUE(matches({{"payload.data.calendar_id", {{"$ne", "cal_4"}}}}));
  EXPECT_FALSE(matches({{"payload.data.calendar_id", {{"$ne", "cal_42"}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$ne", "3"}}}}));  // typed
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$in", {1, 3}}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$in", {"3", true}}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$in", json::array()}}}}));
  EXPECT_TRUE(matches({{"payload.data.organizer", {{"$in", {1, nullptr}}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$nin", {1, 3}}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$nin", {"3"}}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$nin", json::array()}}}}));

  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$gt", 2}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$gt", 3}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$gte", 3}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$gte", 3.5}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$lt", 3.5}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$lt", 3}}}}));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$lte", 3}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$lte", 2}}}}));
  // Strings with strings, by bytes; never a number with a string.
  EXPECT_TRUE(matches({{"payload.data.last_updated_ts", {{"$gte", "2023-05-01T00:00:00Z"}}}}));
  EXPECT_FALSE(matches({{"payload.data.last_updated_ts", {{"$gt", "2023-06"}}}}));
  EXPECT_TRUE(matches({{"payload.data.unicode", {{"$gt", "cafe"}}}}));  // é (C3 A9) sorts after e
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$gt", "1"}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$lt", "9"}}}}));
  EXPECT_FALSE(matches({{"payload.data.calendar_id", {{"$gt", 1}}}}));
  EXPECT_FALSE(matches({{"payload.data.recurring", {{"$lte", 1}}}}));

  EXPECT_TRUE(matches({{"payload.data.calendar_id", {{"$exists", true}}}}));
  EXPECT_FALSE(matches({{"payload.data.calendar_id", {{"$exists", false}}}}));
  EXPECT_TRUE(matches({{"payload.data.organizer", {{"$exists", true}}}}));  // null is present
  EXPECT_TRUE(matches({{"payload.data.nope", {{"$exists", false}}}}));
  EXPECT_FALSE(matches({{"payload.data.nope", {{"$exists", true}}}}));

  EXPECT_TRUE(matches({{"payload.data.calendar_id", {{"$prefix", "cal_"}}}}));
  EXPECT_TRUE(matches({{"payload.data.calendar_id", {{"$prefix", ""}}}}));
  EXPECT_FALSE(matches({{"payload.data.calendar_id", {{"$prefix", "cal_42x"}}}}));
  EXPECT_TRUE(matches({{"payload.data.unicode", {{"$prefix", "caf\xC3"}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$prefix", "3"}}}}));  // not a string
  EXPECT_FALSE(matches({{"payload.data.nested", {{"$prefix", ""}}}}));
}

TEST(PayloadFilterTest, OperatorObjectNeedsEveryOperator) {
  const json range = {{"payload.data.attendees", {{"$gt", 1}, {"$lt", 5}}}};
  EXPECT_TRUE(matches(range));
  EXPECT_FALSE(matches(range, R"({"data":{"attendees":5}})"));
  EXPECT_FALSE(matches(range, R"({"data":{"attendees":1}})"));
  EXPECT_EQ(compile_ok(range)->conditions(), 2u);
}

TEST(PayloadFilterTest, MissingPathSatisfiesOnlyExistsFalseNeAndNin) {
  const std::string_view path = "payload.data.missing";
  for (const json& value : {json{{"$exists", false}}, json{{"$ne", 1}}, json{{"$ne", nullptr}}, json{{"$nin", {1, nullptr}}}}) {
    EXPECT_TRUE(matches({{path, value}})) << value.dump();
  }
  for (const json& value :
       {json(nullptr), json(1), json(""), json{{"$eq", nullptr}}, json{{"$in", {nullptr, 1}}}, json{{"$gt", 0}}, json{{"$gte", ""}},
        json{{"$lt", 0}}, json{{"$lte", "z"}}, json{{"$exists", true}}, json{{"$prefix", ""}}}) {
    EXPECT_FALSE(matches({{path, value}})) << value.dump();
  }
  // Through a scalar, past an array's end, or a key on an array: missing too.
  EXPECT_TRUE(matches({{"payload.data.calendar_id.x", {{"$exists", false}}}}));
  EXPECT_TRUE(matches({{"payload.data.affected_event_uuids.2", {{"$exists", false}}}}));
  EXPECT_TRUE(matches({{"payload.data.affected_event_uuids.first", {{"$exists", false}}}}));
  EXPECT_TRUE(matches({{"payload.x", {{"$exists", false}}}}, "[1,2]"));
}

TEST(PayloadFilterTest, ArrayIndexing) {
  EXPECT_TRUE(matches({{"payload.data.affected_event_uuids.0", "123e4567-e89b-12d3-a456-426614174001"}}));
  EXPECT_TRUE(matches({{"payload.data.affected_event_uuids.1", "123e4567-e89b-12d3-a456-426614174002"}}));
  EXPECT_FALSE(matches({{"payload.data.affected_event_uuids.1", "123e4567-e89b-12d3-a456-426614174001"}}));
  EXPECT_TRUE(matches({{"payload.data.nested.deep.deeper.1.x", 2}}));
  EXPECT_TRUE(matches({{"payload.0.1", "b"}}, R"([["a","b"],"c"])"));
  EXPECT_TRUE(matches({{"payload.1", "c"}}, R"([["a","b"],"c"])"));
  EXPECT_FALSE(matches({{"payload.01", "c"}}, R"([["a","b"],"c"])"));  // not a canonical index
  // A number segment still names an object's member.
  EXPECT_TRUE(matches({{"payload.data.0", "zero key"}}));
  EXPECT_TRUE(matches({{"payload.01", 1}}, R"({"01":1})"));
}

TEST(PayloadFilterTest, EscapedDots) {
  EXPECT_TRUE(matches({{"payload.data.a\\.b", "dotted"}}));
  EXPECT_FALSE(matches({{"payload.data.a.b", "dotted"}}));
  EXPECT_TRUE(matches({{"payload.data.back\\\\slash", "bs"}}));
  EXPECT_TRUE(matches({{"payload.a\\.b.c", 1}}, R"({"a.b":{"c":1}})"));
  EXPECT_TRUE(matches({{"payload.x\\\\.y", 1}}, R"({"x\\":{"y":1}})"));
}

TEST(PayloadFilterTest, EscapedPayloadStringsAndKeys) {
  EXPECT_TRUE(matches({{"payload.k\"ey", "v\"al\n"}}, R"({"k\"ey":"v\"al\n"})"));
  EXPECT_TRUE(matches({{"payload.A", "\xF0\x9F\x98\x80"}}, R"({"\u0041":"\ud83d\ude00"})"));
  EXPECT_TRUE(matches({{"payload.A", {{"$prefix", "\xF0\x9F"}}}}, R"({"\u0041":"\ud83d\ude00"})"));
  EXPECT_TRUE(matches({{"payload.s", {{"$lt", "b"}}}}, R"({"s":"\u0061z"})"));
}

TEST(PayloadFilterTest, RepeatedKeyReadsTheLast) {
  EXPECT_TRUE(matches({{"payload.a", 2}}, R"({"a":1,"a":2})"));
  EXPECT_FALSE(matches({{"payload.a", 1}}, R"({"a":1,"a":2})"));
}

TEST(PayloadFilterTest, TypeAndWholePayload) {
  EXPECT_TRUE(matches({{"type", "calendar.sync_events"}}));
  EXPECT_FALSE(matches({{"type", "calendar.update"}}));
  EXPECT_TRUE(matches({{"type", {{"$prefix", "calendar."}}}}));
  EXPECT_TRUE(matches({{"type", {{"$in", {"a", "calendar.sync_events"}}}}}));
  EXPECT_TRUE(matches({{"payload", 5}}, "5"));
  EXPECT_TRUE(matches({{"payload", {{"$exists", true}}}}, "null"));
  EXPECT_FALSE(matches({{"payload", nullptr}}, "{}"));
}

TEST(PayloadFilterTest, Combinators) {
  const json either = {{"$or", {{{"payload.data.calendar_id", "cal_1"}}, {{"payload.data.attendees", {{"$gte", 3}}}}}}};
  EXPECT_TRUE(matches(either));
  EXPECT_FALSE(matches(either, R"({"data":{"attendees":2}})"));
  EXPECT_TRUE(matches(either, R"({"data":{"calendar_id":"cal_1"}})"));

  const json both = {{"$and", {{{"payload.data.calendar_id", "cal_42"}}, {{"type", "calendar.sync_events"}}}}};
  EXPECT_TRUE(matches(both));
  EXPECT_FALSE(matches(both, kCalendarPayload, "calendar.update"));

  EXPECT_FALSE(matches({{"$not", {{"payload.data.calendar_id", "cal_42"}}}}));
  EXPECT_TRUE(matches({{"$not", {{"payload.data.calendar_id", "cal_1"}}}}));
  EXPECT_TRUE(matches({{"$not", {{"payload.data.missing", 1}}}}));
  EXPECT_FALSE(matches({{"$not", json::object()}}));

  // Inside an operator object they combine tests of the same path.
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$not", {{"$in", {1, 2}}}}}}}));
  EXPECT_FALSE(matches({{"payload.data.attendees", {{"$not", 3}}}}));
  const json outside = {{"payload.data.attendees", {{"$or", {{{"$lt", 1}}, {{"$gt", 2}}}}}}};
  EXPECT_TRUE(matches(outside));
  EXPECT_FALSE(matches(outside, R"({"data":{"attendees":2}})"));
  EXPECT_TRUE(matches({{"payload.data.attendees", {{"$and", {{{"$gt", 1}}, 3}}}}}));
  EXPECT_EQ(compile_ok(outside)->conditions(), 2u);
}

TEST(PayloadFilterTest, LimitsOfSixtyFourConditions) {
  json in_one;
  for (int i = 0; i < 64; ++i) in_one["payload.k" + std::to_string(i)] = i;
  EXPECT_EQ(compile_ok(in_one)->conditions(), 64u);
  in_one["payload.z"] = {{"$in", json::array()}};  // keys are read in sorted order: this one is the 65th
  EXPECT_EQ(error_of(in_one), "filter: payload.z: more than 64 conditions (each operator is one)");

  json big_in = {{"payload.k", {{"$in", json::array()}}}};
  for (int i = 0; i < 1000; ++i) big_in["payload.k"]["$in"].push_back(i);
  EXPECT_EQ(compile_ok(big_in)->conditions(), 1u);

  // Operators in one operator object, and conditions spread over combinators, count the same.
  json ops = json::object();
  for (const char* op : {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$exists", "$prefix"}) ops[op] = op == std::string("$exists") ? json(true) : json("x");
  json spread = json::array();
  for (int i = 0; i < 8; ++i) spread.push_back({{"payload.k" + std::to_string(i), ops}});
  EXPECT_EQ(compile_ok({{"$or", spread}})->conditions(), 64u);
  spread.push_back({{"type", "x"}});
  EXPECT_EQ(error_of({{"$or", spread}}), "filter: $or[8].type: more than 64 conditions (each operator is one)");
}

// `levels` filters deep: levels - 1 nested $not around one condition.
json nested_nots(int levels) {
  json filter = {{"payload.x", 1}};
  for (int i = 1; i < levels; ++i) filter = {{"$not", filter}};
  return filter;
}

TEST(PayloadFilterTest, LimitsOfDepthEight) {
  EXPECT_TRUE(matches(nested_nots(8), R"({"x":2})"));  // seven $not: odd, so it inverts
  EXPECT_EQ(error_of(nested_nots(9)),
            "filter: $not.$not.$not.$not.$not.$not.$not.$not: nested deeper than 8 levels ($and, $or and $not each add one)");

  // $and / $or add a level each, and so do combinators inside an operator object.
  json mixed = {{"payload.x", {{"$not", {{"$or", {{{"$not", 1}}}}}}}}};  // levels 1 + 3 = 4
  for (int i = 0; i < 4; ++i) mixed = {{"$and", {mixed}}};             // 8
  EXPECT_NE(compile_ok(mixed), nullptr);
  EXPECT_EQ(error_of({{"$or", {mixed}}}),
            "filter: $or[0].$and[0].$and[0].$and[0].$and[0].payload.x.$not.$or[0].$not: nested deeper than 8 levels ($and, $or "
            "and $not each add one)");
  // An operator object under a path adds no level.
  json deep_plain = {{"payload.x", {{"$gt", 1}, {"$lt", 9}}}};
  for (int i = 1; i < 8; ++i) deep_plain = {{"$and", {deep_plain}}};
  EXPECT_NE(compile_ok(deep_plain), nullptr);
}

TEST(PayloadFilterTest, ErrorsNameTheOffendingPath) {
  EXPECT_EQ(error_of({{"payload.data.n", {{"$gt", true}}}}), "filter: payload.data.n: $gt takes a number or a string");
  EXPECT_EQ(error_of({{"payload.data.n", {{"$gt", nullptr}}}}), "filter: payload.data.n: $gt takes a number or a string");
  EXPECT_EQ(error_of({{"payload.n", {{"$lte", json::array()}}}}), "filter: payload.n: $lte takes a number or a string");
  EXPECT_EQ(error_of({{"payload.n", {{"$in", 1}}}}), "filter: payload.n: $in takes an array of scalars");
  EXPECT_EQ(error_of({{"payload.n", {{"$nin", json::array({json::array({1})})}}}}), "filter: payload.n: $nin takes an array of scalars");
  EXPECT_EQ(error_of({{"payload.n", {{"$eq", json::object()}}}}),
            "filter: payload.n: $eq takes a scalar (null, a bool, a number or a string)");
  EXPECT_EQ(error_of({{"payload.n", {{"$ne", json::array({1})}}}}), "filter: payload.n: $ne takes a scalar (null, a bool, a number or a string)");
  EXPECT_EQ(error_of({{"payload.n", {{"$exists", 1}}}}), "filter: payload.n: $exists takes true or false");
  EXPECT_EQ(error_of({{"payload.n", {{"$prefix", 1}}}}), "filter: payload.n: $prefix takes a string");
  EXPECT_EQ(error_of({{"payload.n", {{"$regex", "x"}}}}), "filter: payload.n: unknown operator $regex");
  EXPECT_EQ(error_of({{"payload.n", {1, 2}}}),
            "filter: payload.n: a value is a scalar or an operator object; to match one of several values use $in");
  EXPECT_EQ(error_of({{"payload.n", json::object()}}), "filter: payload.n: an empty object is neither a scalar nor an operator object");
  EXPECT_EQ(error_of({{"payload.n", {{"a", 1}}}}),
            "filter: payload.n: equality with an object is not supported; a value is a scalar or an object of operators ($eq, $in, "
            "$gt, ...), and \"a\" is not one");
  EXPECT_EQ(error_of({{"payload.n", {{"$gt", 1}, {"a", 1}}}}),
            "filter: payload.n: equality with an object is not supported; a value is a scalar or an object of operators ($eq, $in, "
            "$gt, ...), and \"a\" is not one");
  EXPECT_EQ(error_of({{"payload.n", {{"$and", json::array()}}}}), "filter: payload.n: $and takes a non-empty array of values");
  EXPECT_EQ(error_of({{"payload.n", {{"$or", {{{"$gt", true}}}}}}}), "filter: payload.n.$or[0]: $gt takes a number or a string");

  // Paths.
  EXPECT_EQ(error_of({{"data.calendar_id", "x"}}), "filter: data.calendar_id: a path starts with type or payload");
  EXPECT_EQ(error_of({{"payloads.x", "x"}}), "filter: payloads.x: a path starts with type or payload");
  EXPECT_EQ(error_of({{"type.x", "x"}}), "filter: type.x: type is a string and has no fields");
  EXPECT_EQ(error_of({{"payload..x", 1}}), "filter: payload..x: a path has no empty segments");
  EXPECT_EQ(error_of({{"payload.x.", 1}}), "filter: payload.x.: a path has no empty segments");
  EXPECT_EQ(error_of({{"", 1}}), "filter: a path has no empty segments");
  EXPECT_EQ(error_of({{"payload.a\\b", 1}}),
            "filter: payload.a\\b: in a path a backslash escapes only a dot (\\.) or a backslash (\\\\)");

  // Combinators and operators at the filter's level.
  EXPECT_EQ(error_of({{"$or", json::array()}}), "filter: $or: $or takes a non-empty array of filters");
  EXPECT_EQ(error_of({{"$and", {{"payload.x", 1}}}}), "filter: $and: $and takes a non-empty array of filters");
  EXPECT_EQ(error_of({{"$and", json::array({1})}}), "filter: $and[0]: a filter is a JSON object");
  EXPECT_EQ(error_of({{"$not", json::array({1})}}), "filter: $not: a filter is a JSON object");
  EXPECT_EQ(error_of({{"$gt", 1}}), "filter: $gt: an operator tests a path: {\"payload.x\": {\"$gt\": ...}}");
  EXPECT_EQ(error_of({{"$where", 1}}), "filter: $where: unknown operator; a filter holds paths (type, payload...) and $and, $or, $not");
  EXPECT_EQ(error_of({{"$or", {{{"payload.ok", 1}}, {{"$not", {{"payload.n", {{"$prefix", 2}}}}}}}}}),
            "filter: $or[1].$not.payload.n: $prefix takes a string");
  EXPECT_EQ(error_of(json::array()), "filter: a filter is a JSON object");
  EXPECT_EQ(error_of(nullptr), "filter: a filter is a JSON object");
  EXPECT_EQ(error_of("payload.x"), "filter: a filter is a JSON object");
}

TEST(PayloadFilterTest, LongLocationsAreCutOnACharacterBoundary) {
  const std::string key = "payload." + std::string(191, 'a') + "\xC3\xA9\xC3\xA9";  // é straddles byte 200
  const std::string message = error_of({{key, {{"$gt", true}}}});
  EXPECT_EQ(message, "filter: payload." + std::string(191, 'a') + "...: $gt takes a number or a string");
  EXPECT_NO_THROW((void)json(message).dump());
}

TEST(PayloadFilterTest, TypeOnlyFiltersNeverIndexThePayload) {
  const auto type_only = compile_ok({{"type", {{"$prefix", "calendar."}}}});
  EXPECT_FALSE(type_only->reads_payload());
  FilterSubject subject("calendar.sync_events", kCalendarPayload);
  EXPECT_TRUE(type_only->matches(subject));
  EXPECT_FALSE(subject.payload_indexed());

  // A failing type test comes first, whatever the order written.
  const auto mixed = compile_ok({{"payload.data.calendar_id", "cal_42"}, {"type", "other"}});
  EXPECT_TRUE(mixed->reads_payload());
  EXPECT_FALSE(mixed->matches(subject));
  EXPECT_FALSE(subject.payload_indexed());

  const auto reads = compile_ok({{"payload.data.calendar_id", "cal_42"}});
  EXPECT_TRUE(reads->matches(subject));
  EXPECT_TRUE(subject.payload_indexed());
}

TEST(PayloadFilterTest, OneSubjectServesManyFilters) {
  std::vector<std::shared_ptr<const PayloadFilter>> filters;
  for (int i = 0; i < 100; ++i) {
    filters.push_back(compile_ok({{"payload.data.calendar_id", "cal_" + std::to_string(i)}, {"payload.data.attendees", {{"$gte", 1}}}}));
  }
  FilterSubject subject("calendar.sync_events", kCalendarPayload);
  int matched = 0;
  for (const auto& filter : filters) matched += filter->matches(subject) ? 1 : 0;
  EXPECT_EQ(matched, 1);
}

TEST(PayloadFilterTest, UnreadablePayloadLeavesEveryPayloadPathMissing) {
  for (const std::string_view payload : {"", "{", R"({"a":1)", R"({"a" 1})", "[1,]x", "tru", R"("abc)", "{} {}"}) {
    EXPECT_TRUE(matches({{"payload", {{"$exists", false}}}}, payload)) << payload;
    EXPECT_FALSE(matches({{"payload.a", 1}}, payload)) << payload;
    EXPECT_TRUE(matches({{"type", "t"}}, payload, "t")) << payload;
  }
}

TEST(JsonIndexTest, IndexesWhitespaceAndNesting) {
  JsonIndex index;
  ASSERT_TRUE(index.build(R"( { "a" : [ 1 , { "b" : "x" } , [ ] ] , "c" : { } } )"));
  const auto a = index.member(JsonIndex::root(), "a");
  ASSERT_NE(a, JsonIndex::npos);
  EXPECT_EQ(index.kind(a), JsonIndex::Kind::array);
  EXPECT_EQ(index.number_text(index.element(a, 0)), "1");
  EXPECT_TRUE(index.string(index.member(index.element(a, 1), "b")).equals("x"));
  EXPECT_EQ(index.kind(index.element(a, 2)), JsonIndex::Kind::array);
  EXPECT_EQ(index.element(a, 3), JsonIndex::npos);
  EXPECT_EQ(index.kind(index.member(JsonIndex::root(), "c")), JsonIndex::Kind::object);
  EXPECT_EQ(index.member(a, "a"), JsonIndex::npos);

  EXPECT_TRUE(index.build(std::string(JsonIndex::kMaxDepth, '[') + std::string(JsonIndex::kMaxDepth, ']')));
  EXPECT_FALSE(index.build(std::string(JsonIndex::kMaxDepth + 1, '[') + std::string(JsonIndex::kMaxDepth + 1, ']')));
  EXPECT_TRUE(index.empty());
}

TEST(JsonIndexTest, StringsCompareDecoded) {
  EXPECT_EQ(JsonString({R"(a\u00e9\n)", true}).compare("a\xC3\xA9\n"), std::strong_ordering::equal);
  EXPECT_EQ(JsonString({R"(a\/b)", true}).compare("a/b"), std::strong_ordering::equal);
  EXPECT_EQ(JsonString({R"(\ud83d\ude00)", true}).compare("\xF0\x9F\x98\x80"), std::strong_ordering::equal);
  EXPECT_EQ(JsonString({R"(a\tb)", true}).compare("a"), std::strong_ordering::greater);
  EXPECT_EQ(JsonString({R"(a\tb)", true}).compare("a\tbc"), std::strong_ordering::less);
  EXPECT_EQ(JsonString({"\xC3\xA9", false}).compare("z"), std::strong_ordering::greater);  // bytes as unsigned
  EXPECT_TRUE(JsonString({R"(\"q\")", true}).starts_with("\"q"));
  EXPECT_FALSE(JsonString({R"(\"q)", true}).starts_with("\"q\""));
}

}  // namespace payload_filter_test
}  // namespace relay
