#pragma once
// The JSON forms of etcd v3's gateway (grpc-gateway over etcd's gRPC API, /v3/...): request
// bodies built from ClusterStore's types and answers parsed back into them.
//
// Pure, so that every answer shape is unit-tested and fuzzed without an etcd. The gateway's
// conventions: keys and values are base64, int64 fields are JSON strings, and a field at its
// default (0, false, empty) is left out. A parse function accepts exactly the answers that
// make sense (malformed JSON, wrong types, bad base64, negative revisions are refused with
// Errc::internal) and never throws.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/cluster/cluster_store.h"
#include "relay/core/result.h"

namespace relay::cluster::etcd {

// The range_end that, with `prefix` as the key (see range_key), covers every key starting with
// `prefix`: the prefix without its trailing 0xff bytes, last byte incremented; "\0" (to the end
// of the key space) when nothing is left.
std::string prefix_range_end(std::string_view prefix);
// The key a range or watch of `prefix` starts at: `prefix`, or "\0" for the empty prefix
// (etcd refuses an empty key).
std::string range_key(std::string_view prefix);

// --- requests --------------------------------------------------------------------------------

std::string range_request(std::string_view key, bool prefix);
// Compares are on mod_revision (0: the key does not exist); `then` runs on success, nothing on
// failure.
std::string txn_request(const Txn& txn);
std::string lease_grant_request(std::chrono::seconds ttl);
// {"ID": lease}: the body of /v3/lease/keepalive and /v3/lease/revoke.
std::string lease_id_request(std::int64_t lease);
// Every change under `prefix` from `from_revision` on, with progress notifications.
std::string watch_create_request(std::string_view prefix, std::int64_t from_revision);
// The body of /v3/auth/authenticate.
std::string authenticate_request(std::string_view user, std::string_view password);

// --- answers ---------------------------------------------------------------------------------

Result<RangeResult> parse_range_response(std::string_view text);
Result<TxnResult> parse_txn_response(std::string_view text);
// The granted lease's id (never 0).
Result<std::int64_t> parse_lease_grant_response(std::string_view text);
// The lease's remaining time to live in seconds; 0 or less when etcd no longer knows the lease
// (it expired or was revoked: its keys are gone).
Result<std::int64_t> parse_keepalive_response(std::string_view text);

// The token of a /v3/auth/authenticate answer (never empty).
Result<std::string> parse_authenticate_response(std::string_view text);

// What a non-2xx answer (or a stream's final message) says: the gRPC status code and message.
struct GatewayError {
  int code = 2;  // gRPC code; 2 (UNKNOWN) when the answer is not a recognizable error
  std::string message;
};
// Both forms: unary {"error": "...", "message": "...", "code": 5} and a stream's
// {"error": {"grpc_code": 14, "message": "..."}}. Never fails: anything else is code 2 with
// (the start of) the text as the message.
GatewayError parse_error_response(std::string_view text);

// A streaming call's error, which comes after the 200 status: {"error": {"grpc_code": ...}}.
// nullopt for any other text.
std::optional<GatewayError> parse_stream_error(std::string_view text);

inline constexpr int kGrpcDeadlineExceeded = 4;
inline constexpr int kGrpcNotFound = 5;
inline constexpr int kGrpcUnavailable = 14;
inline constexpr int kGrpcUnauthenticated = 16;

// Whether etcd refused a call (or cancelled a watch: `text` is then its cancel_reason) for its
// token, so that authenticating again and retrying is the cure: the token is invalid or expired
// ("invalid auth token", gRPC code 16, HTTP 401), none was sent while authentication is on
// ("user name is empty"), or the auth store changed since it was issued ("revision of auth
// store is old"): the cases etcd's own Go client authenticates again for.
bool token_refused(int grpc_code, std::string_view text);
// Whether /v3/auth/authenticate was refused because etcd has authentication off.
bool authentication_off(std::string_view message);

// One message of a /v3/watch stream: {"result": {...}} or {"error": {...}}.
struct WatchMessage {
  std::int64_t header_revision = 0;
  bool created = false;   // the watch is registered; events follow
  bool canceled = false;  // etcd ended the watch (see compact_revision and reason)
  // Set when the requested revision was compacted: the changes from there on are gone.
  std::int64_t compact_revision = 0;
  bool error = false;              // the stream ended with an error ({"error": ...})
  std::string reason;              // cancel_reason, or the error's message
  std::vector<WatchEvent> events;  // in revision order
};
Result<WatchMessage> parse_watch_message(std::string_view text);

}  // namespace relay::cluster::etcd
