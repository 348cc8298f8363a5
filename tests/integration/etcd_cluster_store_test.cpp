// EtcdClusterStore against real etcd members (EtcdCluster): every ClusterStore operation, the
// watch's order, resumption and compaction, and failover between endpoints. The io_context runs
// on the test's thread; the store's egress thread and watch threads answer through it.
//
// EtcdStoreThreeMembers.* kill members of a 3-member cluster and run alone (RELAY_SERIAL_TESTS).

#include "relay/cluster/etcd_cluster_store.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "relay/core/base64.h"
#include "tests/support/egress_fixtures.h"
#include "tests/support/etcd_cluster.h"
#include "tests/support/test_subscriber.h"

namespace relay::cluster {
namespace etcd_cluster_store_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace std::string_literals;
using test::EtcdCluster;
using test::run_until;

// A URL where nothing listens: a port that was free a moment ago.
std::string dead_endpoint() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
  return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
}

Put put(std::string key, std::string value, std::int64_t lease = 0) {
  return Put{.key = std::move(key), .value = std::move(value), .lease = lease};
}

// What a watch delivered, batch by batch.
struct Seen {
  std::vector<WatchEvent> events;
  std::size_t batches = 0;
  bool compacted = false;

  ClusterStore::WatchCallback callback() {
    return [this](WatchBatch batch) {
      ++batches;
      compacted = compacted || batch.compacted;
      for (WatchEvent& event : batch.events) events.push_back(std::move(event));
    };
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const WatchEvent& e : events) out.push_back((e.kind == WatchEvent::Kind::del ? "-" : "+") + e.kv.key);
    return out;
  }
};

class EtcdStoreTest : public ::testing::Test {
 protected:
  explicit EtcdStoreTest(int members = 1) : etcd_(members) {}
  explicit EtcdStoreTest(test::EtcdClusterOptions options) : etcd_(std::move(options)) {}

  std::unique_ptr<EtcdClusterStore> make_store(std::vector<std::string> endpoints,
                                               std::chrono::milliseconds timeout = 2s, EtcdTls tls = {},
                                               EtcdCredentials credentials = {}) {
    EtcdOptions options;
    options.endpoints = std::move(endpoints);
    options.request_timeout = timeout;
    options.tls = std::move(tls);
    options.credentials = std::move(credentials);
    return std::make_unique<EtcdClusterStore>(io_, std::move(options), logger_);
  }
  EtcdClusterStore& store() {
    if (!store_) store_ = make_store(etcd_.client_urls());
    return *store_;
  }

  // Runs one ClusterStore coroutine to its end on the test's thread.
  template <typename T>
  T await(asio::awaitable<T> operation) {
    std::optional<T> result;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          T value = co_await std::move(operation);
          result.emplace(std::move(value));
        },
        asio::detached);
    if (!run_until(io_, [&] { return result.has_value(); })) {
      throw std::runtime_error("the etcd call never finished");
    }
    return std::move(*result);
  }

  TxnResult commit(Txn txn) {
    Result<TxnResult> result = await(store().commit(std::move(txn)));
    EXPECT_TRUE(result.ok()) << result.error().message;
    return result.ok() ? *result : TxnResult{};
  }
  TxnResult put_now(std::string key, std::string value, std::int64_t lease = 0) {
    Txn txn;
    txn.then.push_back(put(std::move(key), std::move(value), lease));
    return commit(std::move(txn));
  }
  // put_now as a caller does it after a member was killed: a member that still counted on a
  // killed leader may hold a call until its deadline (unavailable); the next call starts at
  // another member.
  void put_retrying(std::string key, std::string value) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      Txn txn;
      txn.then.push_back(put(key, value));
      const Result<TxnResult> result = await(store().commit(std::move(txn)));
      if (result.ok()) return;
      EXPECT_EQ(result.error().code, Errc::unavailable) << result.error().message;
    }
    ADD_FAILURE() << "no commit of " << key << " in 3 calls";
  }
  RangeResult range(std::string key, bool prefix) {
    Result<RangeResult> result = await(store().range(std::move(key), prefix));
    EXPECT_TRUE(result.ok()) << result.error().message;
    return result.ok() ? *result : RangeResult{};
  }
  // Runs the io_context for `duration`.
  void pause(std::chrono::milliseconds duration) {
    asio::steady_timer timer(io_, duration);
    bool done = false;
    timer.async_wait([&](boost::system::error_code) { done = true; });
    ASSERT_TRUE(run_until(io_, [&] { return done; }));
  }
  // Probes every 50 ms (running the io_context between probes) until `probe` holds; fails the
  // test after 60 s.
  void wait_until(const std::function<bool()>& probe) {
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (!probe()) {
      if (std::chrono::steady_clock::now() > give_up) {
        ADD_FAILURE() << "never happened";
        return;
      }
      pause(50ms);
    }
  }
  std::optional<std::string> value_of(std::string key) {
    const RangeResult result = range(std::move(key), false);
    if (result.kvs.empty()) return std::nullopt;
    return result.kvs[0].value;
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  Logger logger_{LogLevel::warn};
  EtcdCluster etcd_;
  std::unique_ptr<EtcdClusterStore> store_;
};

class EtcdStore : public EtcdStoreTest {};

class EtcdStoreThreeMembers : public EtcdStoreTest {
 protected:
  EtcdStoreThreeMembers() : EtcdStoreTest(3) {}
};

TEST_F(EtcdStore, RangeReadsOneKeyOrEveryKeyUnderAPrefixInKeyOrder) {
  put_now("/t/a/2", "two");
  put_now("/t/a/10", "ten");
  const TxnResult last = put_now("/t/a/1", "one");
  put_now("/t/b/1", "other prefix");
  put_now("/t/a", "the prefix without its slash");
  const std::string binary = "\0\xff\n\"x"s;
  put_now("/t/a/\xff", binary);

  const RangeResult all = range("/t/a/", true);
  std::vector<std::string> keys;
  for (const KeyValue& kv : all.kvs) keys.push_back(kv.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"/t/a/1", "/t/a/10", "/t/a/2", "/t/a/\xff"}));
  EXPECT_EQ(all.kvs.back().value, binary);
  EXPECT_GE(all.revision, last.revision);

  const RangeResult one = range("/t/a/1", false);
  ASSERT_EQ(one.kvs.size(), 1u);
  EXPECT_EQ(one.kvs[0].value, "one");
  EXPECT_EQ(one.kvs[0].mod_revision, last.revision);
  EXPECT_EQ(one.kvs[0].create_revision, last.revision);
  EXPECT_EQ(one.kvs[0].lease, 0);

  const RangeResult none = range("/t/nothing", false);
  EXPECT_TRUE(none.kvs.empty());
  EXPECT_GE(none.revision, last.revision);
  EXPECT_TRUE(store().reachable());
}

TEST_F(EtcdStore, CommitAppliesOnlyWhenEveryModRevisionStillMatches) {
  // Create if absent (mod_revision 0), twice: the second is refused.
  Txn create;
  create.compares = {{.key = "/t/sub", .mod_revision = 0}};
  create.then = {put("/t/sub", "v1")};
  const TxnResult created = commit(create);
  EXPECT_TRUE(created.succeeded);
  const TxnResult again = commit(create);
  EXPECT_FALSE(again.succeeded);
  EXPECT_EQ(again.revision, created.revision);  // nothing changed
  EXPECT_EQ(value_of("/t/sub"), "v1");

  // Compare-and-swap on the revision read; a stale one is refused and changes nothing.
  Txn update;
  update.compares = {{.key = "/t/sub", .mod_revision = created.revision}};
  update.then = {put("/t/sub", "v2"), put("/t/index/v2", "x")};
  const TxnResult updated = commit(update);
  EXPECT_TRUE(updated.succeeded);
  EXPECT_EQ(updated.revision, created.revision + 1);  // both puts in one revision
  update.then = {put("/t/sub", "v3"), put("/t/index/v3", "x")};
  EXPECT_FALSE(commit(update).succeeded);
  EXPECT_EQ(value_of("/t/sub"), "v2");
  EXPECT_FALSE(value_of("/t/index/v3").has_value());

  // Several conditions: all must hold.
  Txn both;
  both.compares = {{.key = "/t/sub", .mod_revision = updated.revision}, {.key = "/t/other", .mod_revision = 5}};
  both.then = {put("/t/sub", "v4")};
  EXPECT_FALSE(commit(both).succeeded);
  EXPECT_EQ(value_of("/t/sub"), "v2");
}

TEST_F(EtcdStore, DeleteRemovesAKeyAndDeletingAnAbsentKeySucceeds) {
  put_now("/t/gone", "x");
  put_now("/t/stays", "y");
  Txn del;
  del.then = {Delete{.key = "/t/gone"}};
  EXPECT_TRUE(commit(del).succeeded);
  EXPECT_FALSE(value_of("/t/gone").has_value());
  EXPECT_EQ(value_of("/t/stays"), "y");
  EXPECT_TRUE(commit(del).succeeded);
}

TEST_F(EtcdStore, ALeaseKeepsItsKeysWhileKeptAliveAndDeletesThemWhenItExpires) {
  Result<std::int64_t> lease = await(store().grant_lease(2s));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  EXPECT_NE(*lease, 0);
  put_now("/t/shards/a", "http://a", *lease);
  const RangeResult held = range("/t/shards/a", false);
  ASSERT_EQ(held.kvs.size(), 1u);
  EXPECT_EQ(held.kvs[0].lease, *lease);

  // Kept alive past its TTL.
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    const Status renewed = await(store().keep_alive(*lease));
    ASSERT_TRUE(renewed.ok()) << renewed.error().message;
    pause(500ms);
  }
  EXPECT_TRUE(value_of("/t/shards/a").has_value());

  // Not kept alive: the key goes with the lease, and renewing is too late.
  wait_until([&] { return !value_of("/t/shards/a").has_value(); });
  const Status late = await(store().keep_alive(*lease));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::not_found) << late.error().message;
}

TEST_F(EtcdStore, RevokingALeaseDeletesItsKeysAtOnce) {
  Result<std::int64_t> lease = await(store().grant_lease(60s));
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  put_now("/t/shards/b", "http://b", *lease);
  put_now("/t/shards/c", "http://c");

  const Status revoked = await(store().revoke_lease(*lease));
  ASSERT_TRUE(revoked.ok()) << revoked.error().message;
  EXPECT_FALSE(value_of("/t/shards/b").has_value());
  EXPECT_EQ(value_of("/t/shards/c"), "http://c");

  // Gone is gone: revoking again succeeds, renewing and attaching keys do not.
  const Status again = await(store().revoke_lease(*lease));
  EXPECT_TRUE(again.ok()) << again.error().message;
  const Status renewed = await(store().keep_alive(*lease));
  ASSERT_FALSE(renewed.ok());
  EXPECT_EQ(renewed.error().code, Errc::not_found);
  Txn attach;
  attach.then = {put("/t/shards/b", "http://b", *lease)};
  const Result<TxnResult> attached = await(store().commit(attach));
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.error().code, Errc::not_found) << attached.error().message;
  EXPECT_FALSE(value_of("/t/shards/b").has_value());
}

TEST_F(EtcdStore, WatchReplaysFromARevisionThenFollowsPutsAndDeletesInOrder) {
  const TxnResult first = put_now("/t/subs/1", "a");
  put_now("/t/other/1", "not watched");
  put_now("/t/subs/2", "b");
  Txn del;
  del.then = {Delete{.key = "/t/subs/1"}};
  commit(del);

  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/subs/", first.revision, seen.callback());
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() >= 3; }));
  EXPECT_EQ(seen.keys(), (std::vector<std::string>{"+/t/subs/1", "+/t/subs/2", "-/t/subs/1"}));
  EXPECT_EQ(seen.events[0].kv.value, "a");
  EXPECT_EQ(seen.events[0].kv.mod_revision, first.revision);
  EXPECT_EQ(seen.events[2].kind, WatchEvent::Kind::del);

  // Live changes, a transaction of two puts among them.
  Txn two;
  two.then = {put("/t/subs/3", "c"), put("/t/subs/4", "d")};
  const TxnResult paired = commit(two);
  put_now("/t/subs/3", "c2");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() >= 6; }));
  EXPECT_EQ(seen.keys(), (std::vector<std::string>{"+/t/subs/1", "+/t/subs/2", "-/t/subs/1", "+/t/subs/3", "+/t/subs/4",
                                                   "+/t/subs/3"}));
  EXPECT_EQ(seen.events[3].kv.mod_revision, paired.revision);
  EXPECT_EQ(seen.events[4].kv.mod_revision, paired.revision);
  EXPECT_EQ(seen.events[5].kv.value, "c2");
  for (std::size_t i = 1; i < seen.events.size(); ++i) {
    EXPECT_LE(seen.events[i - 1].kv.mod_revision, seen.events[i].kv.mod_revision);
  }
  EXPECT_FALSE(seen.compacted);
  EXPECT_TRUE(store().reachable());
}

TEST_F(EtcdStore, DestroyingAWatchEndsItAndNoCallbackRunsAfter) {
  Seen stopped;
  // From the next revision, not "from now": the watch thread may connect after the put.
  const RangeResult before = range("/t/w/", true);
  std::unique_ptr<WatchHandle> handle = store().watch("/t/w/", before.revision + 1, stopped.callback());
  put_now("/t/w/1", "x");
  ASSERT_TRUE(run_until(io_, [&] { return stopped.events.size() == 1; }));
  handle.reset();

  // A second watch sees a later change; by then the first would have seen it too.
  Seen witness;
  const RangeResult now = range("/t/w/", true);
  const std::unique_ptr<WatchHandle> other = store().watch("/t/w/", now.revision + 1, witness.callback());
  put_now("/t/w/2", "y");
  ASSERT_TRUE(run_until(io_, [&] { return witness.events.size() == 1; }));
  io_.poll();
  EXPECT_EQ(stopped.events.size(), 1u);
}

TEST_F(EtcdStore, AWatchBehindACompactionIsToldSoAndEnds) {
  const TxnResult first = put_now("/t/c/1", "a");
  put_now("/t/c/1", "b");
  const TxnResult last = put_now("/t/c/2", "c");
  const nlohmann::json compacted =
      etcd_.post(0, "/v3/kv/compaction", {{"revision", std::to_string(last.revision)}, {"physical", true}});
  ASSERT_TRUE(compacted.is_object() && compacted.contains("header")) << compacted.dump();

  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/c/", first.revision, seen.callback());
  ASSERT_TRUE(run_until(io_, [&] { return seen.compacted; }));
  EXPECT_TRUE(seen.events.empty());

  // The watch has ended: later changes are not delivered.
  Seen witness;
  const std::unique_ptr<WatchHandle> other = store().watch("/t/c/", last.revision + 1, witness.callback());
  put_now("/t/c/3", "d");
  ASSERT_TRUE(run_until(io_, [&] { return witness.events.size() == 1; }));
  io_.poll();
  EXPECT_EQ(seen.batches, 1u);
  EXPECT_TRUE(seen.events.empty());

  // From the compaction revision on, the history is there.
  Seen resumed;
  const std::unique_ptr<WatchHandle> again = store().watch("/t/c/", last.revision, resumed.callback());
  ASSERT_TRUE(run_until(io_, [&] { return resumed.events.size() == 2; }));
  EXPECT_EQ(resumed.keys(), (std::vector<std::string>{"+/t/c/2", "+/t/c/3"}));
  EXPECT_FALSE(resumed.compacted);
}

TEST_F(EtcdStore, UnaryCallsFailOverPastDeadAndRefusingEndpointsAndLeaveASilentOneBehind) {
  test::TestSubscriber unavailable;  // a proxy in front of a member without leader, say
  unavailable.respond(test::Reply::status(503, R"({"error":"etcdserver: no leader","code":14})"));
  test::TestSubscriber silent;
  silent.respond(test::Reply::blackhole());
  std::vector<std::string> endpoints = {dead_endpoint(), unavailable.url(""), silent.url("")};
  endpoints.push_back(etcd_.client_url(0));
  store_ = make_store(endpoints, 1s);

  // The silent endpoint takes what is left of the call's deadline: etcd is not tried.
  const Result<RangeResult> first = await(store().range("/t/f", false));
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, Errc::unavailable);
  EXPECT_NE(first.error().message.find("1 of 4 endpoints not tried"), std::string::npos) << first.error().message;
  EXPECT_EQ(unavailable.request_count(), 1u);
  EXPECT_EQ(silent.request_count(), 1u);

  // The next call starts after the endpoint that did not answer.
  EXPECT_EQ(put_now("/t/f", "v").succeeded, true);
  EXPECT_EQ(value_of("/t/f"), "v");
  EXPECT_TRUE(store().reachable());
  EXPECT_EQ(unavailable.request_count(), 1u);
  EXPECT_EQ(silent.request_count(), 1u);

  // A watch gets there too.
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 1; }));
  EXPECT_EQ(seen.keys(), std::vector<std::string>{"+/t/f"});
}

// Accepts TCP connections on loopback and never reads or writes a byte: a TLS handshake with
// it never completes. Accepts while the io_context runs.
class MuteListener {
 public:
  explicit MuteListener(asio::io_context& io) : acceptor_(io, {asio::ip::make_address_v4("127.0.0.1"), 0}) {
    accept();
  }
  std::string https_url() const { return "https://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()); }
  std::size_t accepted() const { return sockets_.size(); }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      sockets_.push_back(std::move(socket));
      accept();
    });
  }
  asio::ip::tcp::acceptor acceptor_;
  std::vector<asio::ip::tcp::socket> sockets_;
};

TEST_F(EtcdStore, TriesOnSilentEndpointsShareOneDeadline) {
  std::vector<std::unique_ptr<test::TestSubscriber>> silent;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 3; ++i) {
    silent.push_back(std::make_unique<test::TestSubscriber>());
    silent.back()->respond(test::Reply::blackhole());
    endpoints.push_back(silent.back()->url(""));
  }
  store_ = make_store(endpoints, 300ms);
  const auto requests = [&] {
    std::vector<std::size_t> counts;
    for (const auto& s : silent) counts.push_back(s->request_count());
    return counts;
  };

  // The first endpoint's try used the whole deadline: one try, not one per endpoint.
  const Result<RangeResult> first = await(store().range("/t/k", false));
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, Errc::unavailable);
  EXPECT_NE(first.error().message.find("2 of 3 endpoints not tried within the 300 ms deadline"), std::string::npos)
      << first.error().message;
  EXPECT_EQ(requests(), (std::vector<std::size_t>{1, 0, 0}));
  EXPECT_FALSE(store().reachable());

  // The next call starts at the next endpoint.
  const Result<RangeResult> second = await(store().range("/t/k", false));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(requests(), (std::vector<std::size_t>{1, 1, 0}));
}

TEST_F(EtcdStore, ConnectingGetsAShareOfTheDeadlineSoMembersThatNeverHandshakeLeaveTimeForEtcd) {
  MuteListener mute_a(io_);
  MuteListener mute_b(io_);
  // Each mute member may take a third of the time to connect; etcd answers in the rest (a read:
  // no fsync to wait for).
  store_ = make_store({mute_a.https_url(), mute_b.https_url(), etcd_.client_url(0)}, 2100ms);
  const Result<RangeResult> answer = await(store().range("/t/m", false));
  EXPECT_TRUE(answer.ok()) << answer.error().message;
  wait_until([&] { return mute_a.accepted() == 1 && mute_b.accepted() == 1; });
  EXPECT_TRUE(store().reachable());
}

// --- a secured etcd ------------------------------------------------------------------------

class EtcdStoreTls : public EtcdStoreTest {
 protected:
  EtcdStoreTls() : EtcdStoreTest(test::EtcdClusterOptions{.members = 1, .tls = true, .args = {}}) {}

  EtcdTls client_tls() const {
    const test::EtcdTlsFiles& files = etcd_.tls_files();
    return {files.ca, files.client_cert, files.client_key};
  }
};

TEST_F(EtcdStoreTls, CallsAndWatchesGoOverTlsWithAClientCertificate) {
  ASSERT_TRUE(etcd_.client_url(0).starts_with("https://"));
  store_ = make_store(etcd_.client_urls(), 2s, client_tls());
  EXPECT_EQ(put_now("/t/a", "1").succeeded, true);
  EXPECT_EQ(value_of("/t/a"), "1");
  EXPECT_TRUE(store().reachable());
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  put_now("/t/b", "2");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 2; }));
  EXPECT_EQ(seen.keys(), (std::vector<std::string>{"+/t/a", "+/t/b"}));
}

TEST_F(EtcdStoreTls, WithoutTheClientCertificateOrWithAnotherCaEtcdIsUnreachableAndTheErrorSaysWhy) {
  EtcdTls no_cert = client_tls();
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  EtcdTls other_ca = client_tls();
  other_ca.ca_file = etcd_.tls_files().other_ca;
  // What curl says of etcd's refusal varies ("alert certificate required", a closed
  // connection): the store says what is missing.
  for (const auto& [tls, says] : {std::pair{no_cert, "client certificate"}, {other_ca, "SSL certificate problem"}}) {
    SCOPED_TRACE(tls.ca_file + " " + tls.cert_file);
    store_ = make_store(etcd_.client_urls(), 2s, tls);
    const Result<RangeResult> answer = await(store().range("/t/a", false));
    ASSERT_FALSE(answer.ok());
    EXPECT_EQ(answer.error().code, Errc::unavailable);
    EXPECT_NE(answer.error().message.find(etcd_.client_url(0)), std::string::npos) << answer.error().message;
    EXPECT_NE(answer.error().message.find(says), std::string::npos) << answer.error().message;
    EXPECT_FALSE(store().reachable());
  }
}

TEST_F(EtcdStore, WithAuthenticationOnCallsAndWatchesCarryATokenAndRenewItWhenEtcdRefusesIt) {
  put_now("/t/before", "0");
  store_.reset();
  etcd_.enable_auth("relay", "pw-1");
  store_ = make_store(etcd_.client_urls(), 2s, {}, {"relay", "pw-1"});
  EXPECT_EQ(put_now("/t/a", "1").succeeded, true);
  EXPECT_EQ(value_of("/t/a"), "1");
  EXPECT_TRUE(store().reachable());
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 2; }));

  // Setting the password (to the same) invalidates the user's tokens, as expiry does: etcd
  // answers "invalid auth token". A new watch authenticates again by itself...
  etcd_.change_password("relay", "pw-1");
  Seen renewed;
  const std::unique_ptr<WatchHandle> again = store().watch("/t/", 1, renewed.callback());
  ASSERT_TRUE(run_until(io_, [&] { return renewed.events.size() == 2; }));
  // ... and so does a call.
  EXPECT_EQ(put_now("/t/b", "2").succeeded, true);
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 3 && renewed.events.size() == 3; }));
  EXPECT_TRUE(store().reachable());

  // A wrong password: unavailable, and the error says why.
  store_ = make_store(etcd_.client_urls(), 2s, {}, {"relay", "wrong"});
  const Result<RangeResult> refused = await(store().range("/t/a", false));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::unavailable);
  EXPECT_NE(refused.error().message.find("authentication as user 'relay' refused"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("invalid user ID or password"), std::string::npos)
      << refused.error().message;
  EXPECT_FALSE(store().reachable());
}

TEST_F(EtcdStore, WithEveryEndpointDeadCallsAreUnavailableUntilEtcdIsBack) {
  put_now("/t/k", "before");
  EXPECT_TRUE(store().reachable());
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 1; }));

  etcd_.kill_all();
  const Result<RangeResult> down = await(store().range("/t/k", false));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, Errc::unavailable) << down.error().message;
  EXPECT_FALSE(store().reachable());
  Txn txn;
  txn.then = {put("/t/k", "during")};
  const Result<TxnResult> refused = await(store().commit(txn));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::unavailable);

  etcd_.start_all();
  EXPECT_EQ(value_of("/t/k"), "before");
  EXPECT_TRUE(store().reachable());
  // The watch reconnected by itself and goes on after what it delivered.
  put_now("/t/k", "after");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 2; }));
  EXPECT_EQ(seen.events[1].kv.value, "after");
}

TEST_F(EtcdStoreThreeMembers, AWatchResumesOnAnotherMemberWhenItsMemberIsKilled) {
  // The store tries the first endpoint first, so the watch streams from member 0.
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  put_now("/t/1", "a");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 1; }));

  etcd_.kill(0);
  put_retrying("/t/2", "b");
  put_retrying("/t/3", "c");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() >= 3; }));
  EXPECT_EQ(seen.keys(), (std::vector<std::string>{"+/t/1", "+/t/2", "+/t/3"}));
  EXPECT_TRUE(store().reachable());

  // Member 0 back: the cluster and the watch go on.
  etcd_.start(0);
  put_now("/t/4", "d");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() >= 4; }));
  EXPECT_EQ(seen.keys().back(), "+/t/4");
  EXPECT_EQ(seen.events.size(), 4u);
}

TEST_F(EtcdStoreThreeMembers, CallsSucceedAfterTheLeaderIsKilled) {
  put_now("/t/x", "1");
  etcd_.kill_leader();
  // Whichever endpoint comes first, some live member serves once a leader is elected again. A
  // member that still counted on the killed leader may hold a call until its deadline (it
  // fails unavailable, as with etcd's own client); the next call starts at another member.
  Txn txn;
  txn.compares = {{.key = "/t/y", .mod_revision = 0}};
  txn.then = {put("/t/y", "2")};
  Result<TxnResult> result = make_error(Errc::unavailable, "not tried");
  for (int attempt = 0; attempt < 3 && !result.ok(); ++attempt) {
    result = await(store().commit(txn));
    if (!result.ok()) {
      EXPECT_EQ(result.error().code, Errc::unavailable) << result.error().message;
    }
  }
  ASSERT_TRUE(result.ok()) << result.error().message;
  // A compare-and-swap repeated after a timeout may find its first try applied (succeeded is
  // then false): either way the value is there.
  EXPECT_EQ(value_of("/t/x"), "1");
  EXPECT_EQ(value_of("/t/y"), "2");
  EXPECT_TRUE(store().reachable());
}

TEST_F(EtcdStoreThreeMembers, AWatchOnAMemberThatLostItsQuorumMovesOnWhenItComesBack) {
  Seen seen;
  const std::unique_ptr<WatchHandle> handle = store().watch("/t/", 1, seen.callback());
  put_now("/t/1", "a");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() == 1; }));

  // Member 0 alone has no leader: it ends the stream ("hasleader"), every reconnection fails.
  etcd_.kill(1);
  etcd_.kill(2);
  ASSERT_TRUE(run_until(io_, [&] { return !store().reachable(); }));

  etcd_.start_all();
  put_now("/t/2", "b");
  ASSERT_TRUE(run_until(io_, [&] { return seen.events.size() >= 2; }));
  EXPECT_EQ(seen.keys(), (std::vector<std::string>{"+/t/1", "+/t/2"}));
  EXPECT_TRUE(store().reachable());
}

}  // namespace etcd_cluster_store_test
}  // namespace relay::cluster
