// Fuzz target: a payload filter compiled and evaluated against an arbitrary payload
// (relay/routing/payload_filter.h over relay/routing/json_index.h).
// Input: line 1 the event type, line 2 the filter (JSON), the rest the payload text.
// Properties: no crash on any payload bytes; when the payload is JSON, the filter decides the
// same on its compact text, on its text with every non-ASCII character escaped (\uXXXX and
// surrogate pairs), and on an indented text, and that decision is the one of a plain reference
// evaluator written here over nlohmann's tree, straight from the spec.

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/routing/payload_filter.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;
using relay::fuzz::check;
using relay::fuzz::shallow;

// --- The reference: the spec read literally, over nlohmann values. ---

std::partial_ordering number_order(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    const bool an = a.is_number_unsigned() ? false : a.get<std::int64_t>() < 0;
    const bool bn = b.is_number_unsigned() ? false : b.get<std::int64_t>() < 0;
    if (an != bn) return an ? std::partial_ordering::less : std::partial_ordering::greater;
    if (an) return a.get<std::int64_t>() <=> b.get<std::int64_t>();
    return a.get<std::uint64_t>() <=> b.get<std::uint64_t>();
  }
  return a.get<double>() <=> b.get<double>();
}

bool equal(const json* x, const json& v) {
  if (x == nullptr) return false;
  if (x->is_number() && v.is_number()) return number_order(*x, v) == 0;
  if (x->is_string() && v.is_string()) return x->get_ref<const std::string&>() == v.get_ref<const std::string&>();
  if (x->is_boolean() && v.is_boolean()) return x->get<bool>() == v.get<bool>();
  return x->is_null() && v.is_null();
}

std::partial_ordering order(const json* x, const json& v) {
  if (x == nullptr) return std::partial_ordering::unordered;
  if (x->is_number() && v.is_number()) return number_order(*x, v);
  if (x->is_string() && v.is_string()) {
    const int c = x->get_ref<const std::string&>().compare(v.get_ref<const std::string&>());
    return c < 0 ? std::partial_ordering::less : c > 0 ? std::partial_ordering::greater : std::partial_ordering::equivalent;
  }
  return std::partial_ordering::unordered;
}

bool value_holds(const json& v, const json* x) {
  if (!v.is_object()) return equal(x, v);
  for (const auto& member : v.items()) {
    const std::string& op = member.key();
    const json& arg = member.value();
    bool ok = false;
    if (op == "$eq") ok = equal(x, arg);
    if (op == "$ne") ok = !equal(x, arg);
    if (op == "$in" || op == "$nin") {
      ok = std::any_of(arg.begin(), arg.end(), [&](const json& e) { return equal(x, e); }) == (op == "$in");
    }
    if (op == "$gt") ok = order(x, arg) > 0;
    if (op == "$gte") ok = order(x, arg) >= 0;
    if (op == "$lt") ok = order(x, arg) < 0;
    if (op == "$lte") ok = order(x, arg) <= 0;
    if (op == "$exists") ok = (x != nullptr) == arg.get<bool>();
    if (op == "$prefix") ok = x != nullptr && x->is_string() && x->get_ref<const std::string&>().starts_with(arg.get<std::string>());
    if (op == "$and") ok = std::all_of(arg.begin(), arg.end(), [&](const json& e) { return value_holds(e, x); });
    if (op == "$or") ok = std::any_of(arg.begin(), arg.end(), [&](const json& e) { return value_holds(e, x); });
    if (op == "$not") ok = !value_holds(arg, x);
    if (!ok) return false;
  }
  return true;
}

const json* resolve(const std::string& key, const json& type, const json& payload) {
  std::vector<std::string> segments(1);
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '\\') {
      segments.back() += key[++i];
    } else if (key[i] == '.') {
      segments.emplace_back();
    } else {
      segments.back() += key[i];
    }
  }
  if (segments[0] == "type") return &type;
  const json* at = &payload;
  for (std::size_t i = 1; i < segments.size(); ++i) {
    const std::string& s = segments[i];
    if (at->is_object()) {
      const auto it = at->find(s);
      if (it == at->end()) return nullptr;
      at = &*it;
    } else if (at->is_array()) {
      const bool index = !s.empty() && s.size() <= 10 && (s.size() == 1 || s[0] != '0') &&
                         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!index || std::stoull(s) >= at->size()) return nullptr;
      at = &(*at)[std::stoull(s)];
    } else {
      return nullptr;
    }
  }
  return at;
}

bool filter_holds(const json& spec, const json& type, const json& payload) {
  for (const auto& member : spec.items()) {
    const std::string& key = member.key();
    const json& value = member.value();
    bool ok;
    if (key == "$and") {
      ok = std::all_of(value.begin(), value.end(), [&](const json& f) { return filter_holds(f, type, payload); });
    } else if (key == "$or") {
      ok = std::any_of(value.begin(), value.end(), [&](const json& f) { return filter_holds(f, type, payload); });
    } else if (key == "$not") {
      ok = !filter_holds(value, type, payload);
    } else {
      ok = value_holds(value, resolve(key, type, payload));
    }
    if (!ok) return false;
  }
  return true;
}

bool decide(const relay::PayloadFilter& filter, std::string_view type, std::string_view payload) {
  relay::FilterSubject subject(type, payload);
  return filter.matches(subject);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t first = input.find('\n');
  if (first == std::string_view::npos) return 0;
  const std::size_t second = input.find('\n', first + 1);
  if (second == std::string_view::npos) return 0;
  const std::string_view type = input.substr(0, first);
  const std::string_view filter_text = input.substr(first + 1, second - first - 1);
  const std::string_view payload = input.substr(second + 1);
  if (!shallow(filter_text)) return 0;

  const json spec = json::parse(filter_text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) return 0;
  const auto filter = relay::PayloadFilter::compile(spec);
  if (!filter.ok()) return 0;
  const relay::PayloadFilter& f = **filter;

  (void)decide(f, type, payload);  // any bytes: no crash
  if (!shallow(payload)) return 0;
  const json tree = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (tree.is_discarded()) return 0;
  const json type_value = std::string(type);

  const bool expected = filter_holds(spec, type_value, tree);
  check(decide(f, type, tree.dump()) == expected, "the compact payload decides as the reference");
  check(decide(f, type, tree.dump(-1, ' ', /*ensure_ascii=*/true)) == expected, "an escaped payload decides the same");
  check(decide(f, type, tree.dump(1)) == expected, "an indented payload decides the same");
  return 0;
}
