#include "relay/api/request_parsing.h"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <ctime>

namespace relay {

using nlohmann::json;

namespace {

Error too_deep_error() { return make_error(Errc::invalid_json, "the request body nests deeper than 256 levels"); }
Error not_json_error() { return make_error(Errc::invalid_json, "the request body is not valid JSON"); }
Error not_object_error() { return make_error(Errc::invalid_json, "the request body must be a JSON object"); }

// nlohmann's parse of `text`, bounded: an array or object deeper than kMaxJsonDepth is dropped
// and sets `too_deep` (the parse goes on without building it, iteratively, so the bound costs
// nothing but the check). nlohmann ends the text at a NUL byte.
json parse_bounded(std::string_view text, bool& too_deep) {
  const json::parser_callback_t bound_depth = [&too_deep](int depth, json::parse_event_t event, json&) {
    const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
    if (!opens || depth < kMaxJsonDepth) return true;  // `depth` counts the enclosing levels
    too_deep = true;
    return false;
  };
  return json::parse(text, bound_depth, /*allow_exceptions=*/false);
}

// Whether some part of `text` nests too deep. The depth check covers all of a body: what follows
// a NUL byte is read as the text it would start (only a part longer than the bound can hold too
// many levels, so a body of NUL bytes is not parsed piece by piece).
bool nests_too_deep(std::string_view text) {
  for (;;) {
    const std::size_t nul = text.find('\0');
    if (const std::string_view part = text.substr(0, nul); part.size() > static_cast<std::size_t>(kMaxJsonDepth)) {
      bool too_deep = false;
      parse_bounded(part, too_deep);
      if (too_deep) return true;
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
  const std::string_view text = request.body();
  bool too_deep = false;
  json body = parse_bounded(text, too_deep);  // up to the first NUL byte
  // nlohmann stops reading at a NUL byte; valid JSON text holds none (not even in a string).
  const std::size_t nul = text.find('\0');
  if (too_deep || (nul != std::string_view::npos && nests_too_deep(text.substr(nul + 1)))) return too_deep_error();
  if (nul != std::string_view::npos) return not_json_error();
  if (body.is_discarded()) return not_json_error();
  if (!body.is_object()) return not_object_error();
  return body;
}

Error json_body_error(std::string_view body, bool valid_text) {
  if (valid_text) return not_object_error();
  return nests_too_deep(body) ? too_deep_error() : not_json_error();
}

Result<std::map<std::string, std::string>> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return make_error(Errc::invalid_field, "the query string is malformed");
  for (const auto& param : parsed->params()) out[std::string(param.key)] = std::string(param.value);
  return out;
}

std::optional<UnixMillis> parse_time(std::string_view text) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    UnixMillis ms = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return ms;
  }
  if (text.find('\0') != std::string_view::npos) return std::nullopt;
  std::tm tm{};
  const std::string copy(text);
  const char* rest = strptime(copy.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return std::nullopt;
  int millis = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) millis = millis * 10 + (*rest - '0');
      ++digits;
      ++rest;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 3; ++digits) millis *= 10;
  }
  if (std::string_view(rest) != "Z") return std::nullopt;
  return static_cast<UnixMillis>(timegm(&tm)) * 1000 + millis;
}

}  // namespace relay
