#pragma once
// Building API responses: JSON bodies and the contract's error shape
// {"error": {"code": "snake_case", "message": "human sentence"}}.

#include <nlohmann/json.hpp>

#include "relay/core/result.h"
#include "relay/http/http_server.h"

namespace relay {

HttpResponse json_response(int status, const nlohmann::json& body);
HttpResponse error_response(const Error& error);
HttpResponse error_response(Errc code, std::string message);
HttpResponse empty_response(int status);

}  // namespace relay
