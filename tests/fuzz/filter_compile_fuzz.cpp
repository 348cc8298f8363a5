// Fuzz target: arbitrary JSON compiled as a payload filter (relay/routing/payload_filter.h).
// Properties: no crash; a refused filter is invalid_field with a short "filter: " message that is
// valid UTF-8 (it is echoed in a JSON answer); an accepted one has at most 64 conditions,
// compiles again from its own text to the same filter, never indexes the payload when it reads
// no payload path, and its `$not`, when that is within the depth, holds exactly when it does not.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "relay/routing/payload_filter.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;
using relay::fuzz::check;
using relay::fuzz::shallow;

constexpr std::string_view kPayloads[] = {
    R"({"event":"calendar.sync_events","data":{"calendar_id":"cal_42","n":3,"f":1.5,"b":true,"z":null,"a":[1,"x",{"k":"v"}]}})",
    R"([0,-1,"a.b",{"a.b":{"":1}}])",
    R"("plain")",
    "not json",
};

bool valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!shallow(input)) return 0;
  const json spec = json::parse(input, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) return 0;

  const auto filter = relay::PayloadFilter::compile(spec);
  if (!filter.ok()) {
    check(filter.error().code == relay::Errc::invalid_field, "errors are invalid_field");
    check(filter.error().message.starts_with("filter: "), "messages start with filter:");
    check(filter.error().message.size() <= 600, "messages are short");
    check(valid_utf8(filter.error().message), "messages are valid UTF-8");
    return 0;
  }
  const auto& compiled = *filter;
  check(compiled->conditions() <= relay::PayloadFilter::kMaxConditions, "at most 64 conditions");

  const auto again = relay::PayloadFilter::compile(json::parse(spec.dump()));
  check(again.ok() && (*again)->conditions() == compiled->conditions(), "a filter compiles again from its text");
  const auto negated = relay::PayloadFilter::compile(json{{"$not", spec}});
  check(negated.ok() || negated.error().message.find("nested deeper") != std::string::npos, "$not adds only a level");

  for (const std::string_view payload : kPayloads) {
    for (const std::string_view type : {"calendar.sync_events", "meeting.completed"}) {
      relay::FilterSubject subject(type, payload);
      const bool holds = compiled->matches(subject);
      if (!compiled->reads_payload()) check(!subject.payload_indexed(), "type-only filters never index the payload");
      relay::FilterSubject fresh(type, payload);
      check((*again)->matches(fresh) == holds, "the recompiled filter decides the same");
      if (negated.ok()) check((*negated)->matches(subject) == !holds, "$not inverts");
    }
  }
  return 0;
}
