// Fuzz target: arbitrary text through JsonScanner::value, differentially against nlohmann.
// Properties: the scanner accepts exactly what nlohmann::json::accept accepts when the text nests
// at most 256 levels deep (and refuses deeper text and a leading byte order mark, which nlohmann
// skips); the value's text is the input (up to a NUL byte, where nlohmann stops reading) without
// surrounding whitespace; the compact copy is that text without whitespace between tokens, and
// parses with nlohmann to a value equal to the input's.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "relay/api/json_scanner.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nlohmann::json;
using relay::fuzz::check;

constexpr int kMaxDepth = 256;

// nlohmann's SAX parse, noting the deepest nesting of the text.
class DepthCounter : public nlohmann::json_sax<json> {
 public:
  int deepest() const { return deepest_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool open() {
    deepest_ = std::max(deepest_, ++depth_);
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  int deepest_ = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Valid JSON text without the whitespace outside its strings: a plain reference implementation.
std::string without_whitespace(std::string_view text) {
  std::string out;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\') {
        out.push_back(text[++i]);
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out.push_back(c);
    } else if (!is_space(c)) {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  relay::JsonScanner compacting(text);
  std::string compact;
  const auto value = compacting.value(kMaxDepth, compact);
  const bool scanned = value.has_value() && compacting.at_end();

  relay::JsonScanner validating(text);
  const auto validated = validating.value(kMaxDepth);
  check(validated.has_value() == value.has_value(), "compacting does not change what is accepted");
  if (validated && value) check(*validated == *value, "compacting does not change the value's text");
  check((validated.has_value() && validating.at_end()) == scanned, "compacting does not change the end");

  DepthCounter depth;
  const bool nlohmann_accepts = json::sax_parse(text, &depth, json::input_format_t::json, /*strict=*/true);
  if (text.starts_with("\xEF\xBB\xBF")) {
    check(!scanned, "a byte order mark is not whitespace");
    return 0;
  }
  check(scanned == (nlohmann_accepts && depth.deepest() <= kMaxDepth), "accepts exactly what nlohmann accepts");
  if (!scanned) return 0;

  check(*value == trimmed(text.substr(0, text.find('\0'))), "the value is the text but its surrounding whitespace");
  check(compact == without_whitespace(*value), "the compact text is the value without whitespace");
  check(json::parse(compact) == json::parse(text), "the compact text means the same value");
  return 0;
}
