// Fuzz target: the parsers of etcd gateway answers (relay/cluster/etcd_codec.h), on the text as
// a whole and on each of its lines as watch stream messages. Properties: no crash and no
// exception; an accepted range is in strict key order with non-empty keys and non-negative
// revisions, an accepted watch message's events have positive, non-decreasing revisions, and
// both, written back in the gateway's form, parse to the same values; a granted lease is never
// 0; an error's message is at most 200 bytes and its code a gRPC code.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "relay/cluster/etcd_codec.h"
#include "relay/core/base64.h"
#include "tests/fuzz/fuzz_check.h"

using relay::fuzz::check;
namespace etcd = relay::cluster::etcd;
using relay::cluster::KeyValue;
using relay::cluster::RangeResult;
using relay::cluster::WatchEvent;

namespace {

using json = nlohmann::json;

json gateway_form(const KeyValue& kv) {
  return {{"key", relay::base64_encode(kv.key)},
          {"value", relay::base64_encode(kv.value)},
          {"create_revision", std::to_string(kv.create_revision)},
          {"mod_revision", std::to_string(kv.mod_revision)},
          {"lease", std::to_string(kv.lease)}};
}

bool same(const KeyValue& a, const KeyValue& b) {
  return a.key == b.key && a.value == b.value && a.create_revision == b.create_revision &&
         a.mod_revision == b.mod_revision && a.lease == b.lease;
}

void range(std::string_view text) {
  const relay::Result<RangeResult> result = etcd::parse_range_response(text);
  if (!result) {
    check(result.error().code == relay::Errc::internal, "a refused range answer is internal");
    return;
  }
  check(result->revision >= 0, "range revision is non-negative");
  json kvs = json::array();
  for (std::size_t i = 0; i < result->kvs.size(); ++i) {
    const KeyValue& kv = result->kvs[i];
    check(!kv.key.empty(), "keys are not empty");
    check(i == 0 || result->kvs[i - 1].key < kv.key, "keys in strict order");
    check(kv.create_revision >= 0 && kv.mod_revision >= 0 && kv.lease >= 0, "revisions are non-negative");
    kvs.push_back(gateway_form(kv));
  }
  const json again = {{"header", {{"revision", std::to_string(result->revision)}}}, {"kvs", kvs}};
  const relay::Result<RangeResult> reparsed = etcd::parse_range_response(again.dump());
  check(reparsed.ok() && reparsed->revision == result->revision && reparsed->kvs.size() == result->kvs.size(),
        "a range answer round-trips");
  for (std::size_t i = 0; i < result->kvs.size(); ++i) {
    check(same(reparsed->kvs[i], result->kvs[i]), "a key-value round-trips");
  }
}

void watch_message(std::string_view text) {
  const relay::Result<etcd::WatchMessage> message = etcd::parse_watch_message(text);
  if (!message) return;
  if (message->error) return;
  check(message->header_revision >= 0 && message->compact_revision >= 0, "watch revisions are non-negative");
  json events = json::array();
  for (std::size_t i = 0; i < message->events.size(); ++i) {
    const WatchEvent& event = message->events[i];
    check(event.kv.mod_revision > 0, "an event has a revision");
    check(i == 0 || message->events[i - 1].kv.mod_revision <= event.kv.mod_revision, "events in revision order");
    json e = {{"kv", gateway_form(event.kv)}};
    if (event.kind == WatchEvent::Kind::del) e["type"] = "DELETE";
    events.push_back(std::move(e));
  }
  const json again = {{"result",
                       {{"header", {{"revision", std::to_string(message->header_revision)}}},
                        {"created", message->created},
                        {"canceled", message->canceled},
                        {"compact_revision", std::to_string(message->compact_revision)},
                        {"cancel_reason", message->reason},
                        {"events", events}}}};
  const relay::Result<etcd::WatchMessage> reparsed = etcd::parse_watch_message(again.dump());
  check(reparsed.ok() && reparsed->events.size() == message->events.size() && reparsed->created == message->created &&
            reparsed->canceled == message->canceled && reparsed->compact_revision == message->compact_revision &&
            reparsed->reason == message->reason,
        "a watch message round-trips");
  for (std::size_t i = 0; i < message->events.size(); ++i) {
    check(reparsed->events[i].kind == message->events[i].kind && same(reparsed->events[i].kv, message->events[i].kv),
          "an event round-trips");
  }
}

void error(std::string_view text) {
  const etcd::GatewayError e = etcd::parse_error_response(text);
  check(e.message.size() <= 200, "error messages are short");
  check(e.code >= 1 && e.code <= 16, "error codes are gRPC codes");
  if (const auto streamed = etcd::parse_stream_error(text)) {
    check(streamed->code == e.code && streamed->message == e.message, "a stream error is an error answer");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  range(text);
  watch_message(text);
  error(text);
  static_cast<void>(etcd::parse_txn_response(text));
  static_cast<void>(etcd::parse_keepalive_response(text));
  if (const auto lease = etcd::parse_lease_grant_response(text)) check(*lease > 0, "a granted lease is not 0");
  if (const auto token = etcd::parse_authenticate_response(text)) check(!token->empty(), "a token is not empty");
  static_cast<void>(etcd::token_refused(2, text));
  // As a watch stream: one message per line.
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    watch_message(rest.substr(0, newline));
    if (newline == std::string_view::npos) break;
    rest.remove_prefix(newline + 1);
  }
  return 0;
}
