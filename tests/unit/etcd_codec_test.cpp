// The JSON forms of etcd's gateway. The answers here are etcd 3.4's own, captured from
// /usr/bin/etcd; the refusals are what a broken or foreign server might send.

#include "relay/cluster/etcd_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "relay/core/base64.h"

namespace relay::cluster::etcd {
namespace etcd_codec_test {

using json = nlohmann::json;
using namespace std::string_literals;

std::string b64(const std::string& bytes) { return base64_encode(bytes); }

TEST(EtcdCodec, PrefixRangeEndIncrementsTheLastByteBelow0xff) {
  EXPECT_EQ(prefix_range_end("/relay/subs/"), "/relay/subs0");
  EXPECT_EQ(prefix_range_end("a\xff"), "b");
  EXPECT_EQ(prefix_range_end("a\xfe\xff\xff"), "a\xff");
  EXPECT_EQ(prefix_range_end("\xff\xff"), "\0"s);
  EXPECT_EQ(prefix_range_end(""), "\0"s);
  EXPECT_EQ(range_key(""), "\0"s);
  EXPECT_EQ(range_key("/relay/"), "/relay/");
}

TEST(EtcdCodec, RangeRequestsOneKeyOrAPrefix) {
  EXPECT_EQ(json::parse(range_request("/relay/shards/a", false)), json({{"key", b64("/relay/shards/a")}}));
  EXPECT_EQ(json::parse(range_request("/relay/shards/", true)),
            json({{"key", b64("/relay/shards/")}, {"range_end", b64("/relay/shards0")}}));
  EXPECT_EQ(json::parse(range_request("", true)), json({{"key", b64("\0"s)}, {"range_end", b64("\0"s)}}));
}

TEST(EtcdCodec, TxnRequestComparesModRevisionsAndAppliesPutsAndDeletes) {
  Txn txn;
  txn.compares = {{.key = "/a", .mod_revision = 0}, {.key = "/b", .mod_revision = 42}};
  txn.then = {Put{.key = "/a", .value = "v\0x"s, .lease = 0}, Put{.key = "/l", .value = "", .lease = 7587},
              Delete{.key = "/b"}};
  const json expected = {
      {"compare",
       {{{"key", b64("/a")}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", "0"}},
        {{"key", b64("/b")}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", "42"}}}},
      {"success",
       {{{"request_put", {{"key", b64("/a")}, {"value", b64("v\0x"s)}}}},
        {{"request_put", {{"key", b64("/l")}, {"value", ""}, {"lease", "7587"}}}},
        {{"request_delete_range", {{"key", b64("/b")}}}}}}};
  EXPECT_EQ(json::parse(txn_request(txn)), expected);
  EXPECT_EQ(json::parse(txn_request(Txn{})), json({{"compare", json::array()}, {"success", json::array()}}));
}

TEST(EtcdCodec, LeaseAndWatchRequests) {
  EXPECT_EQ(json::parse(lease_grant_request(std::chrono::seconds(10))), json({{"TTL", "10"}}));
  EXPECT_EQ(json::parse(lease_id_request(2324035769467761682)), json({{"ID", "2324035769467761682"}}));
  EXPECT_EQ(json::parse(watch_create_request("/relay/subs/", 17)),
            json({{"create_request",
                   {{"key", b64("/relay/subs/")},
                    {"range_end", b64("/relay/subs0")},
                    {"start_revision", "17"},
                    {"progress_notify", true}}}}));
  // 0: from the next change on.
  EXPECT_FALSE(json::parse(watch_create_request("/x", 0))["create_request"].contains("start_revision"));
}

TEST(EtcdCodec, RangeAnswerDecodesKeysValuesAndRevisions) {
  const std::string answer =
      R"({"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},)"
      R"("kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmF6","lease":"7587"},)"
      R"({"key":"bm9uZQ==","create_revision":"4","mod_revision":"4","version":"1"}],"count":"2"})";
  const Result<RangeResult> result = parse_range_response(answer);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->revision, 4);
  ASSERT_EQ(result->kvs.size(), 2u);
  EXPECT_EQ(result->kvs[0].key, "foo");
  EXPECT_EQ(result->kvs[0].value, "baz");
  EXPECT_EQ(result->kvs[0].create_revision, 2);
  EXPECT_EQ(result->kvs[0].mod_revision, 3);
  EXPECT_EQ(result->kvs[0].lease, 7587);
  EXPECT_EQ(result->kvs[1].key, "none");
  EXPECT_EQ(result->kvs[1].value, "");  // an empty value is left out
  EXPECT_EQ(result->kvs[1].lease, 0);
}

TEST(EtcdCodec, RangeAnswerWithoutKeysIsEmpty) {
  const Result<RangeResult> result = parse_range_response(
      R"({"header":{"cluster_id":"1","member_id":"2","revision":"9","raft_term":"2"}})");
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->revision, 9);
  EXPECT_TRUE(result->kvs.empty());
}

TEST(EtcdCodec, IntegersMayBeJsonNumbers) {
  const Result<RangeResult> result =
      parse_range_response(R"({"header":{"revision":9},"kvs":[{"key":"YQ==","mod_revision":3}]})");
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->revision, 9);
  EXPECT_EQ(result->kvs[0].mod_revision, 3);
}

TEST(EtcdCodec, MalformedRangeAnswersAreRefused) {
  for (const char* text : {
           "",
           "not json",
           "[]",
           R"({"kvs":[]})",                                             // no header
           R"({"header":[]})",                                          // header not an object
           R"({"header":{"revision":"x9"}})",                           // not a number
           R"({"header":{"revision":"-1"}})",                           // negative
           R"({"header":{"revision":"9223372036854775808"}})",          // over int64
           R"({"header":{"revision":18446744073709551615}})",           // over int64 as a number
           R"({"header":{"revision":1.5}})",                            // not an integer
           R"({"header":{"revision":"1"},"kvs":{}})",                   // kvs not an array
           R"({"header":{"revision":"1"},"kvs":[1]})",                  // kv not an object
           R"({"header":{"revision":"1"},"kvs":[{"value":"YQ=="}]})",   // no key
           R"({"header":{"revision":"1"},"kvs":[{"key":"Y"}]})",        // bad base64
           R"({"header":{"revision":"1"},"kvs":[{"key":"YQ=","value":"YQ=="}]})",
           R"({"header":{"revision":"1"},"kvs":[{"key":"YQ==","value":7}]})",
           R"({"header":{"revision":"1"},"kvs":[{"key":"Yg=="},{"key":"YQ=="}]})",  // out of order
           R"({"header":{"revision":"1"},"kvs":[{"key":"YQ==","lease":"-5"}]})",
       }) {
    const Result<RangeResult> result = parse_range_response(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.error().code, Errc::internal) << text;
    EXPECT_TRUE(result.error().message.starts_with("etcd answer: ")) << result.error().message;
  }
}

TEST(EtcdCodec, TxnAnswerSaysWhetherItWasApplied) {
  const Result<TxnResult> applied = parse_txn_response(
      R"({"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"},"succeeded":true,)"
      R"("responses":[{"response_put":{"header":{"revision":"3"}}},{"response_delete_range":{"header":{"revision":"3"}}}]})");
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_TRUE(applied->succeeded);
  EXPECT_EQ(applied->revision, 3);

  // A refused transaction leaves "succeeded" out.
  const Result<TxnResult> refused =
      parse_txn_response(R"({"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"}})");
  ASSERT_TRUE(refused.ok()) << refused.error().message;
  EXPECT_FALSE(refused->succeeded);
  EXPECT_EQ(refused->revision, 3);

  EXPECT_FALSE(parse_txn_response(R"({"header":{"revision":"3"},"succeeded":"yes"})").ok());
  EXPECT_FALSE(parse_txn_response(R"({"succeeded":true})").ok());
}

TEST(EtcdCodec, LeaseAnswers) {
  const Result<std::int64_t> granted = parse_lease_grant_response(
      R"({"header":{"cluster_id":"1","member_id":"2","revision":"4","raft_term":"2"},"ID":"2324035769467761678","TTL":"2"})");
  ASSERT_TRUE(granted.ok()) << granted.error().message;
  EXPECT_EQ(*granted, 2324035769467761678);
  EXPECT_FALSE(parse_lease_grant_response(R"({"header":{},"TTL":"2"})").ok());  // no ID
  const Result<std::int64_t> refused = parse_lease_grant_response(R"({"header":{},"ID":"5","error":"too many"})");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("too many"), std::string::npos);

  const Result<std::int64_t> renewed = parse_keepalive_response(
      R"({"result":{"header":{"cluster_id":"1","member_id":"2","revision":"4","raft_term":"2"},"ID":"23","TTL":"5"}})");
  ASSERT_TRUE(renewed.ok()) << renewed.error().message;
  EXPECT_EQ(*renewed, 5);
  // A lease etcd no longer knows: no TTL.
  const Result<std::int64_t> expired = parse_keepalive_response(R"({"result":{"header":{},"ID":"23"}})");
  ASSERT_TRUE(expired.ok()) << expired.error().message;
  EXPECT_EQ(*expired, 0);
  EXPECT_FALSE(parse_keepalive_response(R"({"header":{},"ID":"23","TTL":"5"})").ok());
}

TEST(EtcdCodec, ErrorAnswersInBothForms) {
  const GatewayError unary = parse_error_response(
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  EXPECT_EQ(unary.code, kGrpcNotFound);
  EXPECT_EQ(unary.message, "etcdserver: requested lease not found");

  const std::string stream =
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})";
  const GatewayError streamed = parse_error_response(stream);
  EXPECT_EQ(streamed.code, kGrpcUnavailable);
  EXPECT_EQ(streamed.message, "etcdserver: no leader");
  ASSERT_TRUE(parse_stream_error(stream).has_value());
  EXPECT_EQ(parse_stream_error(stream)->code, kGrpcUnavailable);

  EXPECT_FALSE(parse_stream_error(R"({"result":{"header":{},"ID":"23","TTL":"5"}})").has_value());
  EXPECT_FALSE(parse_stream_error("<html>").has_value());

  const GatewayError junk = parse_error_response("<html>bad gateway</html>");
  EXPECT_EQ(junk.code, 2);
  EXPECT_EQ(junk.message, "<html>bad gateway</html>");
  EXPECT_EQ(parse_error_response(std::string(1000, 'x')).message.size(), 200u);
}

TEST(EtcdCodec, WatchMessages) {
  const Result<WatchMessage> created = parse_watch_message(
      R"({"result":{"header":{"cluster_id":"1","member_id":"2","revision":"8","raft_term":"2"},"created":true}})");
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_TRUE(created->created);
  EXPECT_FALSE(created->canceled);
  EXPECT_EQ(created->header_revision, 8);
  EXPECT_TRUE(created->events.empty());

  const Result<WatchMessage> events = parse_watch_message(
      R"({"result":{"header":{"cluster_id":"1","member_id":"2","revision":"8","raft_term":"2"},"events":[)"
      R"({"kv":{"key":"Zm9vMQ==","create_revision":"5","mod_revision":"5","version":"1","value":"YmFy"}},)"
      R"({"type":"DELETE","kv":{"key":"Zm9vMQ==","mod_revision":"6"}}]}})");
  ASSERT_TRUE(events.ok()) << events.error().message;
  ASSERT_EQ(events->events.size(), 2u);
  EXPECT_EQ(events->events[0].kind, WatchEvent::Kind::put);
  EXPECT_EQ(events->events[0].kv.key, "foo1");
  EXPECT_EQ(events->events[0].kv.value, "bar");
  EXPECT_EQ(events->events[0].kv.mod_revision, 5);
  EXPECT_EQ(events->events[1].kind, WatchEvent::Kind::del);
  EXPECT_EQ(events->events[1].kv.key, "foo1");
  EXPECT_EQ(events->events[1].kv.mod_revision, 6);

  // Compaction: the header comes without a revision.
  const Result<WatchMessage> compacted = parse_watch_message(
      R"({"result":{"header":{"cluster_id":"1","member_id":"2","raft_term":"2"},"canceled":true,"compact_revision":"14"}})");
  ASSERT_TRUE(compacted.ok()) << compacted.error().message;
  EXPECT_TRUE(compacted->canceled);
  EXPECT_EQ(compacted->compact_revision, 14);

  const Result<WatchMessage> canceled = parse_watch_message(
      R"({"result":{"header":{"revision":"4"},"watch_id":"-1","created":true,"canceled":true,"cancel_reason":"mvcc: watcher range is empty"}})");
  ASSERT_TRUE(canceled.ok()) << canceled.error().message;
  EXPECT_TRUE(canceled->canceled);
  EXPECT_EQ(canceled->compact_revision, 0);
  EXPECT_EQ(canceled->reason, "mvcc: watcher range is empty");

  const Result<WatchMessage> error = parse_watch_message(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}})");
  ASSERT_TRUE(error.ok()) << error.error().message;
  EXPECT_TRUE(error->error);
  EXPECT_EQ(error->reason, "etcdserver: no leader");
}

TEST(EtcdCodec, MalformedWatchMessagesAreRefused) {
  for (const char* text : {
           "",
           "{",
           R"({"header":{"revision":"1"}})",  // no result
           R"({"result":{"header":{"revision":"1"},"created":"true"}})",
           R"({"result":{"header":{"revision":"1"},"events":{}}})",
           R"({"result":{"header":{"revision":"1"},"events":[{"type":"PUT"}]}})",  // no kv
           R"({"result":{"header":{"revision":"1"},"events":[{"type":"MOVE","kv":{"key":"YQ==","mod_revision":"2"}}]}})",
           R"({"result":{"header":{"revision":"1"},"events":[{"kv":{"key":"YQ=="}}]}})",  // no mod_revision
           R"({"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"YQ==","mod_revision":"3"}},)"
           R"({"kv":{"key":"YQ==","mod_revision":"2"}}]}})",  // out of order
           R"({"result":{"header":{"revision":"1"},"compact_revision":"-3","canceled":true}})",
       }) {
    const Result<WatchMessage> result = parse_watch_message(text);
    EXPECT_FALSE(result.ok()) << text;
  }
}

}  // namespace etcd_codec_test
}  // namespace relay::cluster::etcd

namespace relay::cluster::etcd {
namespace {

TEST(EtcdCodecAuth, AuthenticateRequestAndAnswer) {
  EXPECT_EQ(nlohmann::json::parse(authenticate_request("relay", "p\"w")),
            (nlohmann::json{{"name", "relay"}, {"password", "p\"w"}}));
  const Result<std::string> token =
      parse_authenticate_response(R"({"header":{"revision":"1"},"token":"DXQsvPPZXjJSlfuA.13"})");
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(*token, "DXQsvPPZXjJSlfuA.13");
  EXPECT_FALSE(parse_authenticate_response(R"({"header":{}})").ok());
  EXPECT_FALSE(parse_authenticate_response(R"({"token":5})").ok());
  EXPECT_FALSE(parse_authenticate_response("not json").ok());
}

// etcd 3.4's answers, as its gateway gives them.
TEST(EtcdCodecAuth, RefusedTokensAreToldFromOtherRefusals) {
  const GatewayError expired = parse_error_response(
      R"({"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16})");
  EXPECT_TRUE(token_refused(expired.code, expired.message));
  const GatewayError no_token = parse_error_response(
      R"({"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3})");
  EXPECT_TRUE(token_refused(no_token.code, no_token.message));
  EXPECT_TRUE(token_refused(0, "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"));
  EXPECT_TRUE(token_refused(3, "etcdserver: revision of auth store is old"));
  const GatewayError denied = parse_error_response(
      R"({"error":"etcdserver: permission denied","message":"etcdserver: permission denied","code":7})");
  EXPECT_FALSE(token_refused(denied.code, denied.message));
  const GatewayError wrong = parse_error_response(
      R"({"error":"etcdserver: authentication failed, invalid user ID or password","code":3})");
  EXPECT_FALSE(token_refused(wrong.code, wrong.message));
  EXPECT_FALSE(authentication_off(wrong.message));
  EXPECT_TRUE(authentication_off("etcdserver: authentication is not enabled"));
}

}  // namespace
}  // namespace relay::cluster::etcd
