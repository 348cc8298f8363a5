#include "relay/cluster/etcd_codec.h"

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>
#include <utility>

#include "relay/core/base64.h"

namespace relay::cluster::etcd {
namespace {

using json = nlohmann::json;

Error bad(std::string what) { return make_error(Errc::internal, "etcd answer: " + std::move(what)); }

// nlohmann's parser without exceptions; a discarded value when `text` is not one JSON value.
json parse_json(std::string_view text) { return json::parse(text.begin(), text.end(), nullptr, false); }

// An int64 field: the gateway writes them as strings; plain JSON integers are taken as well.
// Absent means 0 (proto3 leaves defaults out).
std::optional<std::int64_t> int64_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return 0;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned()) {
      const auto u = it->get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
      return static_cast<std::int64_t>(u);
    }
    return it->get<std::int64_t>();
  }
  if (!it->is_string()) return std::nullopt;
  const std::string& text = it->get_ref<const std::string&>();
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

std::optional<bool> bool_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return false;
  if (!it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

// A bytes field (base64); absent means empty.
std::optional<std::string> bytes_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return std::nullopt;
  return base64_decode_canonical(it->get_ref<const std::string&>());
}

std::optional<std::string> string_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// A revision, a lease id or a count: never negative in a sensible answer.
Result<std::int64_t> non_negative(const json& object, const char* name) {
  const std::optional<std::int64_t> value = int64_field(object, name);
  if (!value || *value < 0) return bad(std::string("'") + name + "' is not a non-negative integer");
  return *value;
}

// The answer's top level: an object.
Result<json> answer_object(std::string_view text) {
  json value = parse_json(text);
  if (value.is_discarded()) return bad("not JSON");
  if (!value.is_object()) return bad("not a JSON object");
  return value;
}

// header.revision; the header is required, its revision may be left out (0) in some answers.
Result<std::int64_t> header_revision(const json& answer) {
  const auto header = answer.find("header");
  if (header == answer.end() || !header->is_object()) return bad("no 'header' object");
  return non_negative(*header, "revision");
}

Result<KeyValue> parse_kv(const json& value) {
  if (!value.is_object()) return bad("a key-value is not an object");
  KeyValue kv;
  std::optional<std::string> key = bytes_field(value, "key");
  if (!key || key->empty()) return bad("a key-value has no valid base64 'key'");
  std::optional<std::string> bytes = bytes_field(value, "value");
  if (!bytes) return bad("a key-value has a 'value' that is not valid base64");
  kv.key = std::move(*key);
  kv.value = std::move(*bytes);
  for (const auto& [name, field] : {std::pair{"create_revision", &kv.create_revision},
                                    std::pair{"mod_revision", &kv.mod_revision}, std::pair{"lease", &kv.lease}}) {
    Result<std::int64_t> n = non_negative(value, name);
    if (!n) return n.error();
    *field = *n;
  }
  return kv;
}

Result<WatchEvent> parse_event(const json& value) {
  if (!value.is_object()) return bad("a watch event is not an object");
  WatchEvent event;
  const auto type = value.find("type");
  if (type == value.end() || type->is_null() || *type == "PUT" || *type == 0) {
    event.kind = WatchEvent::Kind::put;
  } else if (*type == "DELETE" || *type == 1) {
    event.kind = WatchEvent::Kind::del;
  } else {
    return bad("a watch event has an unknown 'type'");
  }
  const auto kv = value.find("kv");
  if (kv == value.end()) return bad("a watch event has no 'kv'");
  Result<KeyValue> parsed = parse_kv(*kv);
  if (!parsed) return parsed.error();
  event.kv = std::move(*parsed);
  if (event.kv.mod_revision <= 0) return bad("a watch event has no 'mod_revision'");
  return event;
}

std::string to_text(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

// An int64 as the gateway wants it: a JSON string.
std::string int64_text(std::int64_t value) { return std::to_string(value); }

}  // namespace

std::string prefix_range_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return std::string(1, '\0');
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return end;
}

std::string range_key(std::string_view prefix) { return prefix.empty() ? std::string(1, '\0') : std::string(prefix); }

std::string range_request(std::string_view key, bool prefix) {
  json body = {{"key", base64_encode(prefix ? range_key(key) : std::string(key))}};
  if (prefix) body["range_end"] = base64_encode(prefix_range_end(key));
  return to_text(body);
}

std::string txn_request(const Txn& txn) {
  json compares = json::array();
  for (const Compare& c : txn.compares) {
    compares.push_back({{"key", base64_encode(c.key)},
                        {"target", "MOD"},
                        {"result", "EQUAL"},
                        {"mod_revision", int64_text(c.mod_revision)}});
  }
  json success = json::array();
  for (const Operation& op : txn.then) {
    if (const Put* put = std::get_if<Put>(&op)) {
      json request = {{"key", base64_encode(put->key)}, {"value", base64_encode(put->value)}};
      if (put->lease != 0) request["lease"] = int64_text(put->lease);
      success.push_back({{"request_put", std::move(request)}});
    } else {
      const Delete& del = std::get<Delete>(op);
      success.push_back({{"request_delete_range", {{"key", base64_encode(del.key)}}}});
    }
  }
  return to_text({{"compare", std::move(compares)}, {"success", std::move(success)}});
}

std::string lease_grant_request(std::chrono::seconds ttl) { return to_text({{"TTL", int64_text(ttl.count())}}); }

std::string lease_id_request(std::int64_t lease) { return to_text({{"ID", int64_text(lease)}}); }

std::string watch_create_request(std::string_view prefix, std::int64_t from_revision) {
  json create = {{"key", base64_encode(range_key(prefix))},
                 {"range_end", base64_encode(prefix_range_end(prefix))},
                 {"progress_notify", true}};
  if (from_revision > 0) create["start_revision"] = int64_text(from_revision);
  return to_text({{"create_request", std::move(create)}});
}

std::string authenticate_request(std::string_view user, std::string_view password) {
  return to_text({{"name", std::string(user)}, {"password", std::string(password)}});
}

Result<std::string> parse_authenticate_response(std::string_view text) {
  Result<json> answer = answer_object(text);
  if (!answer) return answer.error();
  const std::optional<std::string> token = string_field(*answer, "token");
  if (!token) return bad("'token' is not a string");
  if (token->empty()) return bad("no 'token'");
  return *token;
}

bool token_refused(int grpc_code, std::string_view text) {
  return grpc_code == kGrpcUnauthenticated || text.find("invalid auth token") != std::string_view::npos ||
         text.find("user name is empty") != std::string_view::npos ||
         text.find("revision of auth store is old") != std::string_view::npos;
}

bool authentication_off(std::string_view message) {
  return message.find("authentication is not enabled") != std::string_view::npos;
}

Result<RangeResult> parse_range_response(std::string_view text) {
  Result<json> answer = answer_object(text);
  if (!answer) return answer.error();
  RangeResult result;
  Result<std::int64_t> revision = header_revision(*answer);
  if (!revision) return revision.error();
  result.revision = *revision;
  if (const auto kvs = answer->find("kvs"); kvs != answer->end() && !kvs->is_null()) {
    if (!kvs->is_array()) return bad("'kvs' is not an array");
    result.kvs.reserve(kvs->size());
    for (const json& value : *kvs) {
      Result<KeyValue> kv = parse_kv(value);
      if (!kv) return kv.error();
      if (!result.kvs.empty() && kv->key <= result.kvs.back().key) return bad("'kvs' not in key order");
      result.kvs.push_back(std::move(*kv));
    }
  }
  return result;
}

Result<TxnResult> parse_txn_response(std::string_view text) {
  Result<json> answer = answer_object(text);
  if (!answer) return answer.error();
  TxnResult result;
  Result<std::int64_t> revision = header_revision(*answer);
  if (!revision) return revision.error();
  result.revision = *revision;
  const std::optional<bool> succeeded = bool_field(*answer, "succeeded");
  if (!succeeded) return bad("'succeeded' is not a boolean");
  result.succeeded = *succeeded;
  return result;
}

Result<std::int64_t> parse_lease_grant_response(std::string_view text) {
  Result<json> answer = answer_object(text);
  if (!answer) return answer.error();
  const std::optional<std::string> error = string_field(*answer, "error");
  if (!error) return bad("'error' is not a string");
  if (!error->empty()) return bad("lease not granted: " + *error);
  Result<std::int64_t> id = non_negative(*answer, "ID");
  if (!id) return id.error();
  if (*id == 0) return bad("no lease 'ID'");
  return *id;
}

Result<std::int64_t> parse_keepalive_response(std::string_view text) {
  Result<json> answer = answer_object(text);
  if (!answer) return answer.error();
  // A streaming call: the one answer comes wrapped in "result".
  const auto result = answer->find("result");
  if (result == answer->end() || !result->is_object()) return bad("no 'result' object");
  const std::optional<std::int64_t> ttl = int64_field(*result, "TTL");
  if (!ttl) return bad("'TTL' is not an integer");
  return *ttl;
}

GatewayError parse_error_response(std::string_view text) {
  constexpr std::size_t kMaxQuoted = 200;
  GatewayError error;
  error.message = std::string(text.substr(0, kMaxQuoted));
  const json answer = parse_json(text);
  if (!answer.is_object()) return error;
  const auto field = answer.find("error");
  // The stream form nests the status in "error"; the unary form has it at the top.
  const json& status = field != answer.end() && field->is_object() ? *field : answer;
  const std::optional<std::int64_t> code = int64_field(status, status.contains("grpc_code") ? "grpc_code" : "code");
  std::optional<std::string> message = string_field(status, "message");
  if (!message || message->empty()) {
    message = field != answer.end() && field->is_string() ? field->get<std::string>() : std::string();
  }
  if (!code || *code <= 0 || *code > 16 || message->empty()) return error;
  error.code = static_cast<int>(*code);
  error.message = message->substr(0, kMaxQuoted);
  return error;
}

std::optional<GatewayError> parse_stream_error(std::string_view text) {
  const json answer = parse_json(text);
  if (!answer.is_object()) return std::nullopt;
  const auto field = answer.find("error");
  if (field == answer.end() || !field->is_object()) return std::nullopt;
  return parse_error_response(text);
}

Result<WatchMessage> parse_watch_message(std::string_view text) {
  Result<json> message = answer_object(text);
  if (!message) return message.error();
  WatchMessage parsed;
  if (const auto error = message->find("error"); error != message->end()) {
    parsed.error = true;
    parsed.reason = parse_error_response(text).message;
    return parsed;
  }
  const auto result = message->find("result");
  if (result == message->end() || !result->is_object()) return bad("no 'result' object");
  Result<std::int64_t> revision = header_revision(*result);
  if (!revision) return revision.error();
  parsed.header_revision = *revision;
  const std::optional<bool> created = bool_field(*result, "created");
  const std::optional<bool> canceled = bool_field(*result, "canceled");
  std::optional<std::string> reason = string_field(*result, "cancel_reason");
  if (!created || !canceled || !reason) return bad("a watch message has a field of the wrong type");
  parsed.created = *created;
  parsed.canceled = *canceled;
  parsed.reason = std::move(*reason);
  Result<std::int64_t> compact = non_negative(*result, "compact_revision");
  if (!compact) return compact.error();
  parsed.compact_revision = *compact;
  if (const auto events = result->find("events"); events != result->end() && !events->is_null()) {
    if (!events->is_array()) return bad("'events' is not an array");
    parsed.events.reserve(events->size());
    for (const json& value : *events) {
      Result<WatchEvent> event = parse_event(value);
      if (!event) return event.error();
      if (!parsed.events.empty() && event->kv.mod_revision < parsed.events.back().kv.mod_revision) {
        return bad("watch events out of revision order");
      }
      parsed.events.push_back(std::move(*event));
    }
  }
  return parsed;
}

}  // namespace relay::cluster::etcd
