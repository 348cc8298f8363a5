#include "tests/support/fake_cluster_store.h"

#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace relay::test {

namespace asio = boost::asio;
using cluster::KeyValue;
using cluster::WatchBatch;
using cluster::WatchEvent;

namespace {

Error unreachable() { return make_error(Errc::unavailable, "etcd is not reachable (fake)"); }

bool has_prefix(const std::string& key, const std::string& prefix) { return key.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

struct FakeClusterStore::Data {
  explicit Data(const Clock& c) : clock(c) {}

  struct Change {
    std::int64_t revision = 0;
    WatchEvent event;
  };
  struct Lease {
    std::int64_t ttl_ms = 0;
    UnixMillis deadline = 0;
    std::set<std::string> keys;
  };

  const Clock& clock;
  std::int64_t revision = 1;  // etcd's revision of an empty store
  std::map<std::string, KeyValue> kvs;
  std::vector<Change> history;  // in revision order, from `compacted` on
  std::int64_t compacted = 0;
  std::map<std::int64_t, Lease> leases;
  std::int64_t next_lease = 7001;
  std::uint64_t keep_alives = 0;
  std::vector<std::weak_ptr<Client>> clients;

  // Changes in progress: the first one of a transaction opens its revision.
  struct Writer {
    Data& data;
    bool changed = false;
    std::int64_t at() {
      if (!changed) {
        ++data.revision;
        changed = true;
      }
      return data.revision;
    }
    void put(const std::string& key, const std::string& value, std::int64_t lease) {
      const std::int64_t rev = at();
      auto [it, created] = data.kvs.try_emplace(key);
      KeyValue& kv = it->second;
      if (!created && kv.lease != lease) {
        if (const auto old = data.leases.find(kv.lease); old != data.leases.end()) old->second.keys.erase(key);
      }
      kv.key = key;
      kv.value = value;
      if (created) kv.create_revision = rev;
      kv.mod_revision = rev;
      kv.lease = lease;
      if (const auto held = data.leases.find(lease); held != data.leases.end()) held->second.keys.insert(key);
      data.history.push_back({rev, WatchEvent{WatchEvent::Kind::put, kv}});
    }
    void del(const std::string& key) {
      const auto it = data.kvs.find(key);
      if (it == data.kvs.end()) return;
      const std::int64_t rev = at();
      if (const auto lease = data.leases.find(it->second.lease); lease != data.leases.end()) {
        lease->second.keys.erase(key);
      }
      data.kvs.erase(it);
      KeyValue gone;
      gone.key = key;
      gone.mod_revision = rev;
      data.history.push_back({rev, WatchEvent{WatchEvent::Kind::del, std::move(gone)}});
    }
  };

  // Ends a lease and deletes its keys at one revision.
  void end_lease(std::map<std::int64_t, Lease>::iterator lease) {
    Writer writer{*this};
    const std::set<std::string> keys = std::move(lease->second.keys);
    leases.erase(lease);
    for (const auto& key : keys) writer.del(key);
    if (writer.changed) notify();
  }

  void expire_due() {
    const UnixMillis now = clock.now_ms();
    for (auto it = leases.begin(); it != leases.end();) {
      auto next = std::next(it);
      if (it->second.deadline <= now) end_lease(it);
      it = next;
    }
  }

  // Every live watch of every client gets a delivery scheduled.
  void notify();
};

struct FakeClusterStore::Client {
  asio::any_io_executor executor;
  bool reachable = true;
  std::vector<std::weak_ptr<WatchState>> watches;
};

struct FakeClusterStore::WatchState {
  std::weak_ptr<Data> data;
  std::weak_ptr<Client> client;
  std::string prefix;
  std::int64_t next = 0;  // the first revision not delivered yet
  WatchCallback on_batch;
  bool ended = false;
  bool scheduled = false;
};

class FakeClusterStore::Handle final : public cluster::WatchHandle {
 public:
  explicit Handle(std::shared_ptr<WatchState> state) : state_(std::move(state)) {}
  ~Handle() override {
    state_->ended = true;
    state_->on_batch = nullptr;
  }

 private:
  std::shared_ptr<WatchState> state_;
};

void FakeClusterStore::Data::notify() {
  for (const auto& weak_client : clients) {
    const auto client = weak_client.lock();
    if (!client) continue;
    for (const auto& weak_watch : client->watches) {
      if (auto watch = weak_watch.lock()) schedule(watch);
    }
  }
}

FakeClusterStore::FakeClusterStore(asio::any_io_executor executor, const Clock& clock)
    : FakeClusterStore(std::make_shared<Data>(clock), std::move(executor)) {}

FakeClusterStore::FakeClusterStore(std::shared_ptr<Data> data, asio::any_io_executor executor)
    : data_(std::move(data)), client_(std::make_shared<Client>()) {
  client_->executor = std::move(executor);
  data_->clients.push_back(client_);
}

FakeClusterStore::~FakeClusterStore() {
  for (const auto& weak_watch : client_->watches) {
    if (auto watch = weak_watch.lock()) watch->ended = true;
  }
  std::erase_if(data_->clients, [this](const auto& c) { return c.expired() || c.lock() == client_; });
}

std::unique_ptr<FakeClusterStore> FakeClusterStore::another_client() const {
  return std::unique_ptr<FakeClusterStore>(new FakeClusterStore(data_, client_->executor));
}

asio::awaitable<void> FakeClusterStore::round_trip() const {
  co_await asio::post(client_->executor, asio::use_awaitable);
}

asio::awaitable<Result<cluster::RangeResult>> FakeClusterStore::range(std::string key, bool prefix) {
  co_await round_trip();
  if (!client_->reachable) co_return unreachable();
  data_->expire_due();
  cluster::RangeResult result;
  result.revision = data_->revision;
  if (prefix) {
    for (auto it = data_->kvs.lower_bound(key); it != data_->kvs.end() && has_prefix(it->first, key); ++it) {
      result.kvs.push_back(it->second);
    }
  } else if (const auto it = data_->kvs.find(key); it != data_->kvs.end()) {
    result.kvs.push_back(it->second);
  }
  co_return result;
}

asio::awaitable<Result<cluster::TxnResult>> FakeClusterStore::commit(cluster::Txn txn) {
  co_await round_trip();
  if (!client_->reachable) co_return unreachable();
  data_->expire_due();
  for (const auto& op : txn.then) {
    if (const auto* put = std::get_if<cluster::Put>(&op); put && put->lease != 0 && !data_->leases.contains(put->lease)) {
      co_return make_error(Errc::not_found, "etcd: requested lease not found");
    }
  }
  cluster::TxnResult result;
  result.succeeded = std::all_of(txn.compares.begin(), txn.compares.end(), [this](const cluster::Compare& c) {
    const auto it = data_->kvs.find(c.key);
    return (it == data_->kvs.end() ? 0 : it->second.mod_revision) == c.mod_revision;
  });
  if (result.succeeded) {
    Data::Writer writer{*data_};
    for (const auto& op : txn.then) {
      if (const auto* put = std::get_if<cluster::Put>(&op)) {
        writer.put(put->key, put->value, put->lease);
      } else {
        writer.del(std::get<cluster::Delete>(op).key);
      }
    }
    if (writer.changed) data_->notify();
  }
  result.revision = data_->revision;
  co_return result;
}

asio::awaitable<Result<std::int64_t>> FakeClusterStore::grant_lease(std::chrono::seconds ttl) {
  co_await round_trip();
  if (!client_->reachable) co_return unreachable();
  data_->expire_due();
  const std::int64_t id = data_->next_lease++;
  const std::int64_t ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
  data_->leases[id] = Data::Lease{ttl_ms, data_->clock.now_ms() + ttl_ms, {}};
  co_return id;
}

asio::awaitable<Status> FakeClusterStore::keep_alive(std::int64_t lease) {
  co_await round_trip();
  if (!client_->reachable) co_return unreachable();
  data_->expire_due();
  const auto it = data_->leases.find(lease);
  if (it == data_->leases.end()) co_return make_error(Errc::not_found, "etcd: requested lease not found");
  it->second.deadline = data_->clock.now_ms() + it->second.ttl_ms;
  ++data_->keep_alives;
  co_return Ok{};
}

asio::awaitable<Status> FakeClusterStore::revoke_lease(std::int64_t lease) {
  co_await round_trip();
  if (!client_->reachable) co_return unreachable();
  data_->expire_due();
  const auto it = data_->leases.find(lease);
  if (it == data_->leases.end()) co_return make_error(Errc::not_found, "etcd: requested lease not found");
  data_->end_lease(it);
  co_return Ok{};
}

std::unique_ptr<cluster::WatchHandle> FakeClusterStore::watch(std::string prefix, std::int64_t from_revision,
                                                              WatchCallback on_batch) {
  auto state = std::make_shared<WatchState>();
  state->data = data_;
  state->client = client_;
  state->prefix = std::move(prefix);
  state->next = from_revision > 0 ? from_revision : data_->revision + 1;
  state->on_batch = std::move(on_batch);
  std::erase_if(client_->watches, [](const auto& w) { return w.expired(); });
  client_->watches.push_back(state);
  schedule(state);
  return std::make_unique<Handle>(std::move(state));
}

void FakeClusterStore::schedule(const std::shared_ptr<WatchState>& watch) {
  const auto client = watch->client.lock();
  if (!client || watch->ended || watch->scheduled) return;
  watch->scheduled = true;
  asio::post(client->executor, [weak = std::weak_ptr<WatchState>(watch)] {
    if (auto watch = weak.lock()) {
      watch->scheduled = false;
      deliver(watch);
    }
  });
}

void FakeClusterStore::deliver(const std::shared_ptr<WatchState>& watch) {
  const auto data = watch->data.lock();
  const auto client = watch->client.lock();
  if (!data || !client || watch->ended || !client->reachable) return;  // paused: resumed by set_reachable
  if (watch->next < data->compacted) {
    watch->ended = true;
    WatchBatch batch;
    batch.compacted = true;
    if (auto callback = std::move(watch->on_batch)) callback(std::move(batch));
    return;
  }
  // One batch per revision; the callback may end the watch (or change the store) in between.
  auto it = std::lower_bound(data->history.begin(), data->history.end(), watch->next,
                             [](const Data::Change& c, std::int64_t rev) { return c.revision < rev; });
  std::vector<WatchBatch> batches;
  std::int64_t batch_revision = 0;
  for (; it != data->history.end(); ++it) {
    if (!has_prefix(it->event.kv.key, watch->prefix)) continue;
    if (batches.empty() || it->revision != batch_revision) {
      batches.emplace_back();
      batch_revision = it->revision;
    }
    batches.back().events.push_back(it->event);
  }
  watch->next = std::max(watch->next, data->revision + 1);
  for (auto& batch : batches) {
    if (watch->ended || !watch->on_batch) return;
    auto callback = watch->on_batch;  // a copy: the callback may destroy the handle
    callback(std::move(batch));
  }
}

bool FakeClusterStore::reachable() const { return client_->reachable; }

void FakeClusterStore::set_reachable(bool reachable) {
  client_->reachable = reachable;
  if (!reachable) return;
  for (const auto& weak_watch : client_->watches) {
    if (auto watch = weak_watch.lock()) schedule(watch);
  }
}

bool FakeClusterStore::expire_lease(std::int64_t lease) {
  const auto it = data_->leases.find(lease);
  if (it == data_->leases.end()) return false;
  data_->end_lease(it);
  return true;
}

void FakeClusterStore::expire_due_leases() { data_->expire_due(); }

void FakeClusterStore::compact(std::int64_t revision) {
  data_->compacted = std::max(data_->compacted, std::min(revision, data_->revision));
  std::erase_if(data_->history, [&](const Data::Change& c) { return c.revision < data_->compacted; });
  data_->notify();
}

std::int64_t FakeClusterStore::revision() const { return data_->revision; }

std::int64_t FakeClusterStore::put(const std::string& key, const std::string& value, std::int64_t lease) {
  if (lease != 0 && !data_->leases.contains(lease)) return 0;
  Data::Writer writer{*data_};
  writer.put(key, value, lease);
  data_->notify();
  return data_->revision;
}

std::int64_t FakeClusterStore::erase(const std::string& key) {
  Data::Writer writer{*data_};
  writer.del(key);
  if (!writer.changed) return 0;
  data_->notify();
  return data_->revision;
}

std::optional<KeyValue> FakeClusterStore::get(const std::string& key) const {
  const auto it = data_->kvs.find(key);
  if (it == data_->kvs.end()) return std::nullopt;
  return it->second;
}

bool FakeClusterStore::lease_exists(std::int64_t lease) const { return data_->leases.contains(lease); }

std::optional<UnixMillis> FakeClusterStore::lease_deadline(std::int64_t lease) const {
  const auto it = data_->leases.find(lease);
  if (it == data_->leases.end()) return std::nullopt;
  return it->second.deadline;
}

std::size_t FakeClusterStore::lease_count() const { return data_->leases.size(); }

std::uint64_t FakeClusterStore::keep_alives() const { return data_->keep_alives; }

std::size_t FakeClusterStore::active_watches() const {
  return static_cast<std::size_t>(std::count_if(client_->watches.begin(), client_->watches.end(), [](const auto& w) {
    const auto watch = w.lock();
    return watch && !watch->ended;
  }));
}

}  // namespace relay::test
