#pragma once
// Validation of API input common to the routes: the JSON body, query parameters, times. Every
// function returns a clear invalid_json / invalid_field error and never a partially applied
// value. Events are read by relay/api/event_parsing.h, subscription fields by
// relay/api/subscription_fields.h.

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "relay/core/clock.h"
#include "relay/core/result.h"
#include "relay/http/http_server.h"

namespace relay {

// Deepest nesting of arrays and objects accepted in a body. JSON parsing is iterative, but
// serializing and comparing nested values recurse: without a bound, a 1 MiB body of brackets
// would overflow the stack.
inline constexpr int kMaxJsonDepth = 256;

// invalid_field: "field '<field>' <what>".
Error field_error(const std::string& field, const std::string& what);

// 415 unless the Content-Type is absent or JSON (or form-encoded, as curl -d sends).
Status check_json_content_type(const HttpRequest& request);

// The body as a JSON object (415 for a non-JSON Content-Type, 400 for bad JSON or a non-object;
// a NUL byte, where nlohmann would stop reading, is bad JSON like any other trailing byte).
Result<nlohmann::json> parse_json_object(const HttpRequest& request);

// The 400 that parse_json_object gives a body that is not a JSON object, for parsers that read
// a body without building a tree: `valid_text` when the body is JSON text (another value than
// an object). For invalid text the body is parsed again to tell a too deep one: not for hot paths.
Error json_body_error(std::string_view body, bool valid_text);

// A list's `limit`: an integer from 1 to `max`.
Result<std::size_t> parse_page_limit(const std::string& text, std::size_t max);

// Query string parameters, percent-decoded. Error for a malformed query.
Result<std::map<std::string, std::string>> parse_query(std::string_view target);

}  // namespace relay
