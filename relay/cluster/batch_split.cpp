#include "relay/cluster/batch_split.h"

#include <nlohmann/json.hpp>

namespace relay::cluster {

using nlohmann::json;

namespace {

std::string compact(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string sub_batch_body(const std::vector<std::string_view>& texts, const std::vector<std::size_t>& elements) {
  std::string body = R"({"events":[)";
  for (std::size_t i = 0; i < elements.size(); ++i) {
    if (i != 0) body += ',';
    body += texts.at(elements[i]);
  }
  body += "]}";
  return body;
}

std::optional<std::vector<std::string>> sub_batch_results(int status, std::string_view body, std::size_t count) {
  if (status != 200) return std::nullopt;
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  const auto results = parsed.find("results");
  if (results == parsed.end() || !results->is_array() || results->size() != count) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(count);
  for (const auto& result : *results) {
    if (!result.is_object()) return std::nullopt;
    out.push_back(compact(result));
  }
  return out;
}

std::optional<std::string> error_object(std::string_view body) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return std::nullopt;
  const auto error = parsed.find("error");
  if (error == parsed.end() || !error->is_object() || !error->contains("code")) return std::nullopt;
  return compact(json{{"error", *error}});
}

std::string batch_answer(const std::vector<std::string>& results) {
  std::string answer = R"({"results":[)";
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (i != 0) answer += ',';
    answer += results[i];
  }
  answer += "]}";
  return answer;
}

}  // namespace relay::cluster
