#include "relay/api/request_parsing.h"

#include <algorithm>
#include <cstdlib>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace relay {

using nlohmann::json;

namespace {

Error too_deep_error() { return make_error(Errc::invalid_json, "the request body nests deeper than 256 levels"); }
Error not_json_error() { return make_error(Errc::invalid_json, "the request body is not valid JSON"); }
Error not_object_error() { return make_error(Errc::invalid_json, "the request body must be a JSON object"); }

// Counts the levels of a text as nlohmann's parser reads it, and ends the parse at the first
// level too deep. A SAX handler rather than a parser callback: a callback can drop a value but
// not end the parse, which then reads the rest of a 1 MiB body of brackets at nlohmann's speed
// (60 ms on the event loop, against well under 1 ms here).
class DepthBound final : public json::json_sax_t {
 public:
  bool too_deep() const { return too_deep_; }

  bool start_object(std::size_t) override { return open(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool key(string_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool open() {
    too_deep_ = ++depth_ > kMaxJsonDepth;
    return !too_deep_;
  }
  bool close() {
    --depth_;
    return true;
  }

  int depth_ = 0;
  bool too_deep_ = false;
};

// Whether some part of `text` nests too deep. The depth check covers all of a body: what follows
// a NUL byte (where nlohmann ends a text) is read as the text it would start. A part with no more
// opening brackets than the bound cannot hold too many levels, and is not parsed.
bool nests_too_deep(std::string_view text) {
  for (;;) {
    const std::size_t nul = text.find('\0');
    const std::string_view part = text.substr(0, nul);
    const auto opening = std::count_if(part.begin(), part.end(), [](char c) { return c == '[' || c == '{'; });
    if (opening > kMaxJsonDepth) {
      DepthBound bound;
      const bool valid = json::sax_parse(part, &bound, json::input_format_t::json, /*strict=*/true);
      if (!valid && bound.too_deep()) return true;
    }
    if (nul == std::string_view::npos) return false;
    text.remove_prefix(nul + 1);
  }
}

}  // namespace

Error field_error(const std::string& field, const std::string& what) {
  return make_error(Errc::invalid_field, "field '" + field + "' " + what);
}

Status check_json_content_type(const HttpRequest& request) {
  const std::string_view content_type = request[boost::beast::http::field::content_type];
  if (content_type.empty()) return Ok{};
  const std::string_view media = content_type.substr(0, content_type.find(';'));
  // curl -d sends application/x-www-form-urlencoded unless told otherwise; its body is still
  // parsed as JSON so that copy-pasted commands work. Any other media type is refused.
  const bool is_json = media == "application/json" || boost::beast::iequals(media, "application/json") ||
                       boost::beast::iequals(media, "application/x-www-form-urlencoded") ||
                       (media.size() > 5 && boost::beast::iequals(media.substr(media.size() - 5), "+json"));
  if (!is_json) return make_error(Errc::unsupported_media_type, "Content-Type must be application/json");
  return Ok{};
}

Result<json> parse_json_object(const HttpRequest& request) {
  if (auto checked = check_json_content_type(request); !checked) return checked.error();
  if (nests_too_deep(request.body())) return too_deep_error();
  // nlohmann stops reading at a NUL byte; valid JSON text holds none (not even in a string).
  if (request.body().find('\0') != std::string::npos) return not_json_error();
  json body = json::parse(request.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return not_json_error();
  if (!body.is_object()) return not_object_error();
  return body;
}

Error json_body_error(std::string_view body, bool valid_text) {
  if (valid_text) return not_object_error();
  return nests_too_deep(body) ? too_deep_error() : not_json_error();
}

Result<std::size_t> parse_page_limit(const std::string& text, std::size_t max) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || n == 0 || n > max) {
    return make_error(Errc::invalid_field, "limit must be an integer from 1 to " + std::to_string(max));
  }
  return static_cast<std::size_t>(n);
}

Result<std::map<std::string, std::string>> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return make_error(Errc::invalid_field, "the query string is malformed");
  for (const auto& param : parsed->params()) out[std::string(param.key)] = std::string(param.value);
  return out;
}

}  // namespace relay
