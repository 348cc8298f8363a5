#pragma once
// Building API responses: JSON bodies and the contract's error shape
// {"error": {"code": "snake_case", "message": "human sentence"}}.

#include <nlohmann/json.hpp>
#include <string>

#include "relay/core/result.h"
#include "relay/http/http_server.h"

namespace relay {

HttpResponse json_response(int status, const nlohmann::json& body);
// A body that is JSON text already (hot paths write theirs without building a tree).
HttpResponse json_text_response(int status, std::string body);
HttpResponse error_response(const Error& error);
HttpResponse error_response(Errc code, std::string message);
HttpResponse empty_response(int status);

// The HTTP status the contract assigns to an error kind.
int errc_http_status(Errc code);

// The contract's error object for `error`, as JSON text.
std::string error_json(const Error& error);

}  // namespace relay
